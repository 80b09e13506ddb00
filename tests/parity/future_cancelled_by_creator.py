"""A future cancelled by the code that created it, while a task waits on it."""

import asyncio

from _parity import cancelling


async def waiter(name: str, fut: asyncio.Future[int], catch: bool) -> str:
    me = asyncio.current_task()
    assert me is not None
    print(f"{name}: awaiting")
    try:
        await fut
    except asyncio.CancelledError as exc:
        print(f"{name}: CancelledError {exc.args}, my cancelling = {cancelling(me)}")
        if not catch:
            raise
        return f"{name} recovered"
    return f"{name} got a value"


async def main() -> None:
    loop = asyncio.get_running_loop()
    for maker in ("loop.create_future()", "asyncio.Future()"):
        print("==", maker)
        fut = loop.create_future() if maker.startswith("loop") else asyncio.Future()
        t1 = asyncio.create_task(waiter("w1", fut, catch=True), name="w1")
        t2 = asyncio.create_task(waiter("w2", fut, catch=False), name="w2")
        await asyncio.sleep(0)
        print("main: cancelling the future ->", fut.cancel())
        print("main: cancel again ->", fut.cancel(), "cancelled()", fut.cancelled())
        print("main: w1 ->", await t1, "cancelled()", t1.cancelled())
        try:
            await t2
        except asyncio.CancelledError:
            print("main: w2 cancelled()", t2.cancelled(), "cancelling", cancelling(t2))
        try:
            fut.result()
        except asyncio.CancelledError:
            print("main: result() of the cancelled future raises CancelledError")
        try:
            fut.exception()
        except asyncio.CancelledError:
            print("main: exception() of the cancelled future raises CancelledError")
        f2 = loop.create_future()
        f2.add_done_callback(lambda f: print("callback: cancelled?", f.cancelled()))
        f2.cancel()
        print("main: cancelled with nobody waiting")
        await asyncio.sleep(0)
        print("main: after one step")


asyncio.run(main())
