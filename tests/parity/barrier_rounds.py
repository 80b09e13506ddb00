"""3.11+: a Barrier of three passed twice, then aborted while a task waits."""

import asyncio

from _parity import requires

requires((3, 11))


async def party(name: str, barrier: asyncio.Barrier, rounds: int) -> None:
    for r in range(rounds):
        print(f"{name}: arriving at round {r} (n_waiting={barrier.n_waiting})")
        index = await barrier.wait()
        print(f"{name}: passed round {r} with index {index}")
        await asyncio.sleep(0)


async def main() -> None:
    barrier = asyncio.Barrier(3)
    await asyncio.gather(*(party(f"p{i}", barrier, 2) for i in range(3)))
    print("main: broken?", barrier.broken, "n_waiting", barrier.n_waiting)

    async def stuck() -> None:
        try:
            await barrier.wait()
        except asyncio.BrokenBarrierError:
            print("stuck: BrokenBarrierError")

    t = asyncio.create_task(stuck(), name="stuck")
    await asyncio.sleep(0)
    print("main: aborting with", barrier.n_waiting, "waiting")
    await barrier.abort()
    await t
    print("main: broken?", barrier.broken)
    await barrier.reset()
    print("main: after reset broken?", barrier.broken)


asyncio.run(main())
