"""A hand-made loop: run_forever/stop, run_until_complete twice, Runner (3.11+)."""

import asyncio
import sys

import _parity  # noqa: F401


async def spinner(name: str, n: int) -> str:
    for i in range(n):
        print(f"{name}: step {i}")
        await asyncio.sleep(0)
    return name


loop = asyncio.new_event_loop()
t = loop.create_task(spinner("bg", 6), name="bg")
loop.call_soon(print, "callback before stop")
loop.call_soon(loop.stop)
loop.call_soon(print, "callback after stop (runs in the same iteration)")
print("run_forever 1")
loop.run_forever()
print("stopped; bg done?", t.done())
print("run_until_complete ->", loop.run_until_complete(spinner("fg", 2)))
loop.call_soon(loop.stop)
print("run_forever 2")
loop.run_forever()
print("run_until_complete bg ->", loop.run_until_complete(t))
print("is_running", loop.is_running(), "is_closed", loop.is_closed())
loop.run_until_complete(loop.shutdown_asyncgens())
loop.close()
print("closed", loop.is_closed())
try:
    loop.create_task(spinner("late", 1))
except RuntimeError as exc:
    print("create_task on a closed loop:", exc)

if sys.version_info >= (3, 11):
    with asyncio.Runner() as runner:
        print("Runner run 1 ->", runner.run(spinner("r1", 2)))
        print("Runner run 2 ->", runner.run(spinner("r2", 1)))
else:  # the same output from two asyncio.run calls
    print("Runner run 1 ->", asyncio.run(spinner("r1", 2)))
    print("Runner run 2 ->", asyncio.run(spinner("r2", 1)))
