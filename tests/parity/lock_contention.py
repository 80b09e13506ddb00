"""A Lock contended by four tasks, with a waiter cancelled while queued."""

import asyncio

import _parity  # noqa: F401


async def user(name: str, lock: asyncio.Lock, holds: int) -> None:
    print(f"{name}: acquiring (locked={lock.locked()})")
    async with lock:
        print(f"{name}: acquired")
        for i in range(holds):
            await asyncio.sleep(0)
            print(f"{name}: holding, step {i}")
    print(f"{name}: released")


async def main() -> None:
    lock = asyncio.Lock()
    tasks = [asyncio.create_task(user(f"u{i}", lock, 2), name=f"u{i}") for i in range(4)]
    await asyncio.sleep(0)
    print("main: cancelling u2 while it waits")
    tasks[2].cancel()
    res = await asyncio.gather(*tasks, return_exceptions=True)
    print("main: results", [type(r).__name__ for r in res], "locked", lock.locked())

    await lock.acquire()
    print("main: acquired directly; locked", lock.locked())
    waiter = asyncio.create_task(user("late", lock, 0), name="late")
    await asyncio.sleep(0)
    print("main: releasing")
    lock.release()
    print("main: released; locked", lock.locked())
    await waiter
    try:
        lock.release()
    except RuntimeError as exc:
        print("main: release unlocked ->", exc)


asyncio.run(main())
