"""asyncio.wait with FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED and a timeout."""

import asyncio

import _parity  # noqa: F401


async def steps(name: str, n: int, fail: bool = False) -> str:
    for i in range(n):
        print(f"{name}: step {i}")
        await asyncio.sleep(0)
    if fail:
        print(f"{name}: raising")
        raise RuntimeError(name)
    print(f"{name}: done")
    return name


def names(tasks: set[asyncio.Task[str]]) -> list[str]:
    return sorted(t.get_name() for t in tasks)


async def main() -> None:
    ts = {asyncio.create_task(steps(n, k), name=n) for n, k in (("a", 9), ("b", 1), ("c", 4))}
    done, pending = await asyncio.wait(ts, return_when=asyncio.FIRST_COMPLETED)
    print("main: FIRST_COMPLETED done", names(done), "pending", names(pending))
    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    print("main: again done", names(done), "pending", names(pending))
    await asyncio.wait(pending)

    ts = {
        asyncio.create_task(steps("d", 4), name="d"),
        asyncio.create_task(steps("e", 1, fail=True), name="e"),
    }
    done, pending = await asyncio.wait(ts, return_when=asyncio.FIRST_EXCEPTION)
    print("main: FIRST_EXCEPTION done", names(done), "pending", names(pending))
    for t in done:
        print("main: exception of", t.get_name(), repr(t.exception()))
    done, pending = await asyncio.wait(pending, return_when=asyncio.ALL_COMPLETED)
    print("main: ALL_COMPLETED done", names(done), "pending", names(pending))

    ev = asyncio.Event()
    w = asyncio.create_task(ev.wait(), name="waiter")
    done, pending = await asyncio.wait({w}, timeout=0.01)
    print("main: timeout done", names(done), "pending", names(pending))
    ev.set()
    await w
    print("main: waiter finished", w.result())


asyncio.run(main())
