"""A task destroyed while pending: the loop is closed with a task never awaited.

asyncio logs "Task was destroyed but it is pending!" when the task is collected;
the asyncio logger writes to stdout here so that its lines interleave with the
prints, which pins down exactly when the task was collected.
"""

import asyncio
import gc
import logging
import sys

import _parity  # noqa: F401

gc.disable()  # collections happen only where the program asks
logging.basicConfig(stream=sys.stdout, format="LOG %(levelname)s %(name)s: %(message)s")


async def forever(name: str) -> None:
    print(f"{name}: started, waiting forever")
    try:
        await asyncio.Event().wait()
    finally:
        print(f"{name}: finally (coroutine closed)")


async def sleeper() -> None:
    print("sleeper: sleeping 3600 s")
    await asyncio.sleep(3600)


async def starter() -> None:
    asyncio.get_running_loop().create_task(forever("inner"), name="inner")
    print("starter: spawned inner and returned")


loop = asyncio.new_event_loop()
t = loop.create_task(forever("outer"), name="outer")
s = loop.create_task(sleeper(), name="sleeper")
loop.run_until_complete(starter())
loop.run_until_complete(asyncio.sleep(0))
print("collecting while the loop is open: only inner is garbage")
gc.collect()
print("closing the loop with pending tasks")
loop.close()
print("dropping the tasks")
del t
gc.collect()
print("after outer collected")
del s
gc.collect()
print("after sleeper collected")
gc.collect()
print("after a last collection")
