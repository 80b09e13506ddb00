"""call_soon_threadsafe and run_coroutine_threadsafe from another thread."""

import asyncio
import threading

import _parity  # noqa: F401


async def double(x: int) -> int:
    print("double: running in the loop")
    await asyncio.sleep(0)
    return 2 * x


async def main() -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    plain = asyncio.Future()

    def worker() -> None:
        print("thread: setting results through call_soon_threadsafe")
        loop.call_soon_threadsafe(fut.set_result, "from thread")
        loop.call_soon_threadsafe(plain.set_result, "plain from thread")

    th = threading.Thread(target=worker)
    th.start()
    print("main: awaiting futures set by the thread ->", await fut, await plain)
    th.join()

    result: list[int] = []
    done = asyncio.Event()

    def submitter() -> None:
        cf = asyncio.run_coroutine_threadsafe(double(21), loop)
        result.append(cf.result())
        loop.call_soon_threadsafe(done.set)

    th = threading.Thread(target=submitter)
    th.start()
    await done.wait()
    th.join()
    print("main: run_coroutine_threadsafe ->", result)

    def late_callback(tag: str) -> None:
        print("callback:", tag, "in loop thread:", threading.current_thread() is threading.main_thread())

    th = threading.Thread(target=lambda: loop.call_soon_threadsafe(late_callback, "hello"))
    th.start()
    th.join()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    print("main: end")


asyncio.run(main())
