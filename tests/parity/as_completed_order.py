"""as_completed yields in completion order; completion order is fixed by a setter task."""

import asyncio

import _parity  # noqa: F401


async def worker(name: str, gate: asyncio.Future[None]) -> str:
    print(f"{name}: waiting for its gate")
    await gate
    print(f"{name}: gate open")
    return name


async def setter(gates: list[asyncio.Future[None]], order: list[int]) -> None:
    for i in order:
        await asyncio.sleep(0)
        print(f"setter: opening gate {i}")
        gates[i].set_result(None)
        await asyncio.sleep(0)


async def main() -> None:
    loop = asyncio.get_running_loop()
    gates = [loop.create_future(), asyncio.Future(), loop.create_future()]
    tasks = [asyncio.create_task(worker(f"w{i}", g), name=f"w{i}") for i, g in enumerate(gates)]
    s = asyncio.create_task(setter(gates, [2, 0, 1]), name="setter")
    for fut in asyncio.as_completed(tasks):
        print("main: next completed ->", await fut)
    await s

    async def instant() -> str:
        print("instant: returning")
        return "instant"

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("in as_completed")

    # Tasks, not coroutines: as_completed wraps coroutines in set order (by id).
    pair = [asyncio.create_task(fails(), name="fails"), asyncio.create_task(instant(), name="instant")]
    for fut in asyncio.as_completed(pair):
        try:
            print("main: got", await fut)
        except ValueError as exc:
            print("main: got exception", repr(exc))

    ev = asyncio.Event()
    try:
        for fut in asyncio.as_completed([ev.wait()], timeout=0.01):
            await fut
    except asyncio.TimeoutError:
        print("main: as_completed timed out")


asyncio.run(main())
