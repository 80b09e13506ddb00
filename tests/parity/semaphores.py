"""Semaphore(2) with five tasks; BoundedSemaphore over-release; a cancelled waiter."""

import asyncio

import _parity  # noqa: F401


async def worker(name: str, sem: asyncio.Semaphore) -> None:
    print(f"{name}: acquiring (locked={sem.locked()})")
    async with sem:
        print(f"{name}: in")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        print(f"{name}: out")


async def main() -> None:
    sem = asyncio.Semaphore(2)
    tasks = [asyncio.create_task(worker(f"w{i}", sem), name=f"w{i}") for i in range(5)]
    await asyncio.sleep(0)
    tasks[3].cancel()
    res = await asyncio.gather(*tasks, return_exceptions=True)
    print("main: results", [type(r).__name__ for r in res], "locked", sem.locked())

    b = asyncio.BoundedSemaphore(1)
    await b.acquire()
    b.release()
    try:
        b.release()
    except ValueError as exc:
        print("main: bounded over-release ->", exc)

    s0 = asyncio.Semaphore(0)
    waiters = [asyncio.create_task(worker(f"z{i}", s0), name=f"z{i}") for i in range(3)]
    await asyncio.sleep(0)
    print("main: releasing twice")
    s0.release()
    s0.release()
    await asyncio.sleep(0)
    print("main: one more release")
    s0.release()
    await asyncio.gather(*waiters)
    print("main: all through")


asyncio.run(main())
