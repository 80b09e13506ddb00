"""3.11+: a TaskGroup whose child fails: siblings cancelled, ExceptionGroup raised."""

import asyncio
import traceback

from _parity import requires

requires((3, 11))


async def child(name: str, steps: int, fail: bool = False) -> str:
    try:
        for i in range(steps):
            print(f"{name}: step {i}")
            await asyncio.sleep(0)
        if fail:
            print(f"{name}: failing")
            raise ValueError(f"{name} failed")
        print(f"{name}: done")
        return name
    except asyncio.CancelledError:
        print(f"{name}: cancelled")
        raise


async def main() -> None:
    try:
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(child("a", 5), name="a")
            b = tg.create_task(child("b", 2, fail=True), name="b")
            c = tg.create_task(child("c", 1), name="c")
            print("main: body done, waiting for children")
    except ExceptionGroup as eg:  # noqa: F821  (3.11+; older versions exit above)
        print("main: ExceptionGroup", repr(eg), [repr(e) for e in eg.exceptions])
        print("".join(traceback.format_exception(eg)))
    print("main: a cancelled?", a.cancelled(), "b exc", repr(b.exception()), "c result", c.result())

    async with asyncio.TaskGroup() as tg:
        ts = [tg.create_task(child(f"ok{i}", i), name=f"ok{i}") for i in range(3)]
    print("main: all ok ->", [t.result() for t in ts])

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(child("x", 3), name="x")
            tg.create_task(child("y", 3), name="y")
            await asyncio.sleep(0)
            print("main: body raising KeyError")
            raise KeyError("body")
    except BaseExceptionGroup as eg:  # noqa: F821
        print("main: group from body", [repr(e) for e in eg.exceptions])
    except KeyError as e:
        print("main: bare KeyError", repr(e))


asyncio.run(main())
