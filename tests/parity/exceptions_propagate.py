"""Exceptions through nested awaits and tasks, with chaining; tracebacks printed to stdout."""

import asyncio
import traceback

import _parity  # noqa: F401


async def level3() -> None:
    print("level3: raising ValueError")
    await asyncio.sleep(0)
    raise ValueError("deep")


async def level2() -> None:
    print("level2: awaiting level3")
    try:
        await level3()
    except ValueError as exc:
        print("level2: wrapping", repr(exc))
        raise RuntimeError("wrapped") from exc


async def level1() -> None:
    print("level1: awaiting a task running level2")
    await asyncio.create_task(level2(), name="level2")


async def implicit_context() -> None:
    try:
        await level3()
    except ValueError:
        await asyncio.sleep(0)
        raise KeyError("while handling")  # noqa: B904  (the implicit __context__ is the point)


async def main() -> None:
    try:
        await level1()
    except RuntimeError:
        print("main: caught:")
        print(traceback.format_exc())
    t = asyncio.create_task(implicit_context(), name="implicit")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    print("main: implicit done?", t.done())
    exc = t.exception()
    print("main: exception()", repr(exc), "context", repr(exc.__context__))
    print("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    # The same failed task awaited twice raises the same exception object.
    first = second = None
    try:
        await t
    except KeyError as e:
        first = e
    try:
        await t
    except KeyError as e:
        second = e
    print("main: same exception object twice:", first is second is exc)
    print("main: result() raises:", end=" ")
    try:
        t.result()
    except KeyError as e:
        print(repr(e))


asyncio.run(main())
