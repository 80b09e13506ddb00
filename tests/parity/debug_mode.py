"""asyncio debug mode: source tracebacks in what asyncio logs.

In debug mode asyncio records where each task, future and handle was created
(the innermost frames of the stack at that moment) and prints them in its log
lines, so any frame that instrumentation adds would show here.
"""

import asyncio
import gc

import _parity  # noqa: F401

gc.disable()


async def boom() -> None:
    raise ValueError("debug never retrieved")


def bad_callback() -> None:
    raise RuntimeError("debug callback")


async def main() -> None:
    loop = asyncio.get_running_loop()
    loop.slow_callback_duration = 3600  # never warn about slow callbacks
    print("main: debug", loop.get_debug())
    t = asyncio.create_task(boom(), name="boom")
    await asyncio.sleep(0)
    print("main: created at:", t._source_traceback[-1][:3])  # type: ignore[attr-defined]
    del t
    gc.collect()
    print("main: after collecting the task")
    loop.call_soon(bad_callback)
    await asyncio.sleep(0)
    print("main: after the failing callback")
    f = loop.create_future()
    print("main: future created at:", f._source_traceback[-1][:3])  # type: ignore[attr-defined]
    f.set_exception(KeyError("debug future"))
    del f
    gc.collect()
    print("main: end")


asyncio.run(main(), debug=True)
