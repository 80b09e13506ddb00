"""Task and future reprs, names, get_coro(), get_stack() and print_stack() in every state."""

import asyncio
import contextlib
import sys

import _parity  # noqa: F401


async def worker(ev: asyncio.Event) -> str:
    await ev.wait()
    return "worker result"


async def failing() -> None:
    raise ValueError("failed")


async def main() -> None:
    me = asyncio.current_task()
    assert me is not None
    print("main: current task:", me)
    print("main: name", me.get_name(), "coro", me.get_coro())
    ev = asyncio.Event()
    coro = worker(ev)
    t = asyncio.create_task(coro)
    print("main: auto-named, before first step:", t)
    print("main: get_coro() is the coroutine passed:", t.get_coro() is coro)
    print("main: get_name:", t.get_name())
    await asyncio.sleep(0)
    print("main: parked:", t)
    print("main: get_stack frames:", [(f.f_code.co_name, f.f_lineno) for f in t.get_stack()])
    t.print_stack(file=sys.stdout)
    t.set_name("renamed")
    print("main: after set_name:", t)
    t.set_name(42)
    print("main: set_name(42) ->", repr(t.get_name()))
    ev.set()
    await t
    print("main: done:", t)
    print("main: get_coro() after done is still the coroutine:", t.get_coro() is coro)

    t2 = asyncio.create_task(failing(), name="failing")
    await asyncio.sleep(0)
    print("main: failed:", t2)
    t2.exception()
    t3 = asyncio.create_task(worker(ev), name="to-cancel")
    t3.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await t3
    print("main: cancelled:", t3)
    t4 = asyncio.create_task(worker(asyncio.Event()))
    t5 = asyncio.ensure_future(worker(asyncio.Event()))
    print("main: more auto names:", t4.get_name(), t5.get_name())
    await asyncio.sleep(0)
    print("main: all task names:", sorted(x.get_name() for x in asyncio.all_tasks()))
    t4.cancel()
    t5.cancel()
    await asyncio.sleep(0)

    loop = asyncio.get_running_loop()
    f1 = loop.create_future()
    f2 = asyncio.Future()
    for f in (f1, f2):
        print("main: pending future:", f)
        f.add_done_callback(print)
        print("main: with a callback:", f)
    waiter = asyncio.create_task(asyncio.wait([f1]), name="waiter")
    await asyncio.sleep(0)
    print("main: awaited by a task:", f1)
    print("main: the task:", waiter)
    f1.set_result(1)
    f2.set_exception(ValueError("x"))
    print("main: finished futures:", f1, f2)
    f2.exception()
    await waiter
    print("main: loop:", loop)


asyncio.run(main())
