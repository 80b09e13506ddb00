"""Exceptions never retrieved: asyncio logs them (on stderr) when the object is collected.

gc.collect() makes the moment deterministic; the prints around it on stdout and
the log lines on stderr must both match.
"""

import asyncio
import gc

import _parity  # noqa: F401

gc.disable()  # collections happen only where the program asks


async def boom(msg: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(msg)


async def main() -> None:
    t = asyncio.create_task(boom("task never retrieved"), name="boom-task")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    print("main: task done?", t.done())
    del t
    gc.collect()
    print("main: after dropping the task")

    loop = asyncio.get_running_loop()
    f = loop.create_future()
    f.set_exception(KeyError("create_future never retrieved"))
    del f
    gc.collect()
    print("main: after dropping loop.create_future()")

    f2 = asyncio.Future()
    f2.set_exception(KeyError("Future() never retrieved"))
    del f2
    gc.collect()
    print("main: after dropping asyncio.Future()")

    t2 = asyncio.create_task(boom("retrieved"), name="retrieved")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    print("main: retrieved ->", repr(t2.exception()))
    del t2
    gc.collect()
    print("main: after dropping a retrieved task (no log)")

    t3 = asyncio.create_task(boom("cycle"), name="cycle-task")
    t3.self_ref = t3  # type: ignore[attr-defined]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    del t3
    gc.collect()
    print("main: after collecting a task in a reference cycle")


asyncio.run(main())
print("end")
