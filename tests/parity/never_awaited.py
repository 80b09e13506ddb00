"""'coroutine ... was never awaited' warnings, and their location."""

import asyncio
import gc
import warnings

import _parity  # noqa: F401

gc.disable()
warnings.simplefilter("always")


async def job() -> None:
    print("job: ran (unexpected)")


async def main() -> None:
    c = job()
    print("main: dropping an un-awaited coroutine")
    del c
    print("main: after drop")
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fut.set_result(job())
    print("main: a coroutine kept in a future result")
    res = fut.result()
    del fut, res
    print("main: after dropping the future")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job()
        gc.collect()
    print("main: caught", [(w.category.__name__, str(w.message)) for w in caught])


asyncio.run(main())
gc.collect()
print("end")
