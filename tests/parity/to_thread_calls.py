"""asyncio.to_thread and run_in_executor, returning and raising."""

import asyncio
import concurrent.futures
import functools

import _parity  # noqa: F401


def blocking(x: int, *, scale: int = 1) -> int:
    print(f"thread: blocking({x}, scale={scale})")
    return x * scale


def broken() -> None:
    print("thread: raising")
    raise OSError("disk on fire")


async def main() -> None:
    loop = asyncio.get_running_loop()
    if hasattr(asyncio, "to_thread"):
        print("main: to_thread ->", await asyncio.to_thread(blocking, 3, scale=5))
        try:
            await asyncio.to_thread(broken)
        except OSError as exc:
            print("main: to_thread raised", repr(exc))
    print("main: run_in_executor(None) ->", await loop.run_in_executor(None, blocking, 7))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        call = functools.partial(blocking, 2, scale=10)
        print("main: run_in_executor(pool) ->", await loop.run_in_executor(pool, call))
        r1 = loop.run_in_executor(pool, blocking, 1)
        r2 = loop.run_in_executor(pool, blocking, 2)
        print("main: two queued ->", await asyncio.gather(r1, r2))
    cf: concurrent.futures.Future[int] = concurrent.futures.Future()
    wrapped = asyncio.wrap_future(cf)
    loop.call_soon(cf.set_result, 99)
    print("main: wrap_future ->", await wrapped)


asyncio.run(main())
