"""shield(): cancelling the outer await leaves the inner task running."""

import asyncio

import _parity  # noqa: F401


async def inner(ev: asyncio.Event) -> str:
    print("inner: started")
    await ev.wait()
    print("inner: event seen")
    await asyncio.sleep(0)
    print("inner: returning")
    return "inner result"


async def outer(inner_task: asyncio.Task[str]) -> str:
    print("outer: awaiting shield(inner)")
    try:
        return await asyncio.shield(inner_task)
    except asyncio.CancelledError:
        print("outer: cancelled; inner done?", inner_task.done())
        raise


async def main() -> None:
    ev = asyncio.Event()
    it = asyncio.create_task(inner(ev), name="inner")
    ot = asyncio.create_task(outer(it), name="outer")
    await asyncio.sleep(0)
    print("main: cancel outer ->", ot.cancel())
    try:
        await ot
    except asyncio.CancelledError:
        print("main: outer cancelled; inner cancelled?", it.cancelled())
    ev.set()
    print("main: inner ->", await it)

    print("main: shield of a coroutine ->", await asyncio.shield(inner(ev)))
    f = asyncio.get_running_loop().create_future()
    s = asyncio.shield(f)
    s.cancel()
    print("main: shield outer cancelled:", s.cancelled(), "inner future cancelled:", f.cancelled())
    f.set_result("late")
    print("main: inner future result", f.result())
    f2 = asyncio.Future()
    s2 = asyncio.shield(f2)
    f2.set_exception(KeyError("k"))
    try:
        await s2
    except KeyError as exc:
        print("main: shield passes the exception", repr(exc))


asyncio.run(main())
