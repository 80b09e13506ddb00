"""Two tasks take two Locks in opposite orders: a deadlock, which main ends by
cancelling them. Instrumented, the deadlock is reported (test_parity's
EXPECTED_DIAGNOSTICS) and the program takes exactly the same steps."""

import asyncio

import _parity  # noqa: F401


async def worker(name: str, first: asyncio.Lock, second: asyncio.Lock) -> None:
    async with first:
        print(f"{name}: holds its first lock")
        await asyncio.sleep(0)
        print(f"{name}: taking its second lock (locked={second.locked()})")
        try:
            async with second:
                print(f"{name}: holds both")  # never: the other holds it
        except asyncio.CancelledError:
            print(f"{name}: cancelled while waiting for its second lock")
            raise


async def main() -> None:
    a, b = asyncio.Lock(), asyncio.Lock()
    workers = [
        asyncio.create_task(worker("ab", a, b), name="ab"),
        asyncio.create_task(worker("ba", b, a), name="ba"),
    ]
    done, pending = await asyncio.wait(workers, timeout=0.2)
    print(f"main: {len(done)} done, {len(pending)} stuck")
    for task in workers:
        task.cancel()
    results = await asyncio.gather(*workers, return_exceptions=True)
    print("main: results", [type(r).__name__ for r in results], "locked", a.locked(), b.locked())


asyncio.run(main())
