"""Cancellation messages: on tasks, on futures, through gather and a chain of awaits."""

import asyncio

import _parity  # noqa: F401


async def inner(ev: asyncio.Event) -> None:
    print("inner: waiting")
    try:
        await ev.wait()
    except asyncio.CancelledError as exc:
        print("inner: cancelled with args", exc.args)
        raise


async def outer(ev: asyncio.Event) -> None:
    print("outer: awaiting inner")
    try:
        await inner(ev)
    except asyncio.CancelledError as exc:
        print("outer: cancelled with args", exc.args)
        raise


async def on_future(fut: asyncio.Future[None]) -> None:
    try:
        await fut
    except asyncio.CancelledError as exc:
        print("on_future: CancelledError args", exc.args)
        raise


async def main() -> None:
    ev = asyncio.Event()
    t = asyncio.create_task(outer(ev), name="outer")
    await asyncio.sleep(0)
    print("main: cancel('stop now') ->", t.cancel("stop now"))
    try:
        await t
    except asyncio.CancelledError as exc:
        print("main: outer raised CancelledError args", exc.args)

    fut = asyncio.Future()
    t2 = asyncio.create_task(on_future(fut), name="on_future")
    await asyncio.sleep(0)
    print("main: fut.cancel('fut msg') ->", fut.cancel("fut msg"))
    try:
        await t2
    except asyncio.CancelledError as exc:
        print("main: on_future raised CancelledError args", exc.args, "cancelled()", t2.cancelled())

    g = asyncio.gather(inner(ev), inner(ev))
    await asyncio.sleep(0)
    print("main: gather.cancel('gather msg') ->", g.cancel("gather msg"))
    try:
        await g
    except asyncio.CancelledError as exc:
        print("main: gather raised CancelledError args", exc.args)


asyncio.run(main())
