"""3.11+: cancelling()/uncancel() bookkeeping, and asyncio.timeout against an outer cancel."""

import asyncio

from _parity import requires

requires((3, 11))


async def worker() -> str:
    me = asyncio.current_task()
    assert me is not None
    for i in range(3):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            print(f"worker: cancelled #{i}, cancelling = {me.cancelling()}")
            print("worker: uncancel ->", me.uncancel())
    print("worker: done, cancelling =", me.cancelling())
    return "survived"


async def timed_but_cancelled(started: asyncio.Event) -> None:
    me = asyncio.current_task()
    assert me is not None
    try:
        async with asyncio.timeout(60):
            started.set()
            print("timed: inside timeout(60)")
            await asyncio.sleep(60)
    except TimeoutError:
        print("timed: TimeoutError (unexpected)")
    except asyncio.CancelledError:
        print("timed: outer CancelledError, cancelling =", me.cancelling())
        raise


async def main() -> None:
    t = asyncio.create_task(worker(), name="worker")
    for i in range(3):
        await asyncio.sleep(0)
        print(f"main: cancel #{i} ->", t.cancel(), "cancelling", t.cancelling())
    print("main: worker ->", await t)

    started = asyncio.Event()
    t2 = asyncio.create_task(timed_but_cancelled(started), name="timed")
    await started.wait()
    print("main: cancelling timed ->", t2.cancel())
    try:
        await t2
    except asyncio.CancelledError:
        print("main: timed cancelled", t2.cancelled())

    me = asyncio.current_task()
    assert me is not None
    me.cancel()
    print("main: cancelled myself, cancelling =", me.cancelling())
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        print("main: caught my own cancel; uncancel ->", me.uncancel())
    print("main: end, cancelling =", me.cancelling())


asyncio.run(main())
