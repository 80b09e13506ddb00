"""A task that catches CancelledError and carries on, then finishes normally."""

import asyncio

from _parity import cancelling


async def stubborn(gate: asyncio.Event) -> str:
    me = asyncio.current_task()
    assert me is not None
    survived = 0
    for round_ in range(3):
        print(f"stubborn: round {round_}, waiting")
        try:
            await gate.wait()
            print(f"stubborn: gate open in round {round_}")
            break
        except asyncio.CancelledError:
            survived += 1
            print(f"stubborn: caught CancelledError #{survived}, cancelling = {cancelling(me)}")
            if hasattr(me, "uncancel"):
                print("stubborn: uncancel ->", me.uncancel())
        await asyncio.sleep(0)
        print(f"stubborn: after sleep(0) in round {round_}")
    return f"survived {survived}"


async def main() -> None:
    gate = asyncio.Event()
    t = asyncio.create_task(stubborn(gate), name="stubborn")
    for i in range(2):
        await asyncio.sleep(0)
        print(f"main: cancel #{i} ->", t.cancel())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    print("main: opening the gate")
    gate.set()
    result = await t
    print("main: result", result, "cancelled()", t.cancelled(), "cancelling", cancelling(t))


asyncio.run(main())
