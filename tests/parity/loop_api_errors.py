"""Errors raised by the loop's own methods: their tracebacks, printed to stdout.

Passing a non-coroutine to create_task, a non-callable to call_soon, using a
closed loop, a task factory that raises: the traceback of each exception must
show the same frames with and without instrumentation.
"""

import asyncio
import traceback

import _parity  # noqa: F401


def show(label: str) -> None:
    print(f"== {label}")
    print(traceback.format_exc())


async def job() -> str:
    return "job"


def broken_factory(loop, coro, **kwargs):  # type: ignore[no-untyped-def]
    coro.close()
    raise LookupError("factory refuses")


async def main() -> None:
    loop = asyncio.get_running_loop()
    try:
        asyncio.create_task("not a coroutine")  # type: ignore[arg-type]
    except TypeError:
        show("create_task(str)")
    try:
        loop.create_task(42)  # type: ignore[arg-type]
    except TypeError:
        show("loop.create_task(int)")
    try:
        loop.call_soon(None)  # type: ignore[arg-type]
    except TypeError:
        show("call_soon(None)")
    try:
        loop.call_soon(print, context="not a context")  # type: ignore[arg-type]
        await asyncio.sleep(0)
    except TypeError:
        show("call_soon(context=str)")
    loop.set_task_factory(broken_factory)
    try:
        asyncio.create_task(job())
    except LookupError:
        show("a task factory that raises")
    loop.set_task_factory(None)
    print("main: create_future ->", loop.create_future().done())


asyncio.run(main())

closed = asyncio.new_event_loop()
closed.close()
coro = job()
try:
    closed.create_task(coro)
except RuntimeError:
    show("create_task on a closed loop")
coro.close()
try:
    closed.call_soon(print, "never")
except RuntimeError:
    show("call_soon on a closed loop")
print("main: create_future on a closed loop ->", type(closed.create_future()).__name__)
