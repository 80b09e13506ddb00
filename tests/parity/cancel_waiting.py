"""Cancel tasks parked on an Event, on a future, in sleep, and before their first step."""

import asyncio

from _parity import cancelling


async def waiter(name: str, ev: asyncio.Event) -> None:
    print(f"{name}: waiting on the event")
    try:
        await ev.wait()
    except asyncio.CancelledError as exc:
        print(f"{name}: CancelledError args={exc.args}")
        raise
    print(f"{name}: woke (unexpected)")


async def on_future(fut: asyncio.Future[int]) -> None:
    print("fut-waiter: awaiting the future")
    try:
        await fut
    finally:
        print("fut-waiter: finally, fut.cancelled() =", fut.cancelled())


async def sleeper() -> None:
    print("sleeper: sleeping 60 s")
    try:
        await asyncio.sleep(60)
    finally:
        print("sleeper: finally")


async def main() -> None:
    ev = asyncio.Event()
    fut = asyncio.get_running_loop().create_future()
    t1 = asyncio.create_task(waiter("t1", ev), name="t1")
    t2 = asyncio.create_task(on_future(fut), name="t2")
    t3 = asyncio.create_task(sleeper(), name="t3")
    await asyncio.sleep(0)
    print("main: done?", t1.done(), t2.done(), t3.done())
    print("main: cancel t1 ->", t1.cancel(), "cancelling:", cancelling(t1))
    print("main: cancel t1 again ->", t1.cancel(), "cancelling:", cancelling(t1))
    print("main: cancel t2 ->", t2.cancel())
    print("main: cancel t3 ->", t3.cancel())
    for t in (t1, t2, t3):
        try:
            await t
        except asyncio.CancelledError:
            print(f"main: awaiting {t.get_name()} raised CancelledError, cancelled() = {t.cancelled()}")
    print("main: fut.cancelled() =", fut.cancelled())
    print("main: cancel a finished task ->", t1.cancel())
    t4 = asyncio.create_task(waiter("t4", ev), name="t4")
    print("main: cancel t4 before its first step ->", t4.cancel())
    try:
        await t4
    except asyncio.CancelledError:
        print("main: t4 cancelled without running:", t4.cancelled())
    print("main: all_tasks =", sorted(t.get_name() for t in asyncio.all_tasks()))


asyncio.run(main())
print("end")
