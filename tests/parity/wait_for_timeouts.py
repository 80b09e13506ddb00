"""wait_for with a timeout that expires and one that does not, and the cancel they cause."""

import asyncio

import _parity  # noqa: F401


async def quick() -> str:
    print("quick: step 1")
    await asyncio.sleep(0)
    print("quick: step 2")
    return "quick result"


async def forever(ev: asyncio.Event) -> None:
    print("forever: waiting")
    try:
        await ev.wait()
    except asyncio.CancelledError:
        print("forever: cancelled by wait_for")
        raise


async def slow_cleanup(ev: asyncio.Event) -> None:
    try:
        await ev.wait()
    finally:
        print("slow_cleanup: cleanup step 1")
        await asyncio.sleep(0)
        print("slow_cleanup: cleanup step 2")


async def main() -> None:
    print("main: ->", await asyncio.wait_for(quick(), timeout=60))
    print("main: no timeout ->", await asyncio.wait_for(quick(), timeout=None))
    ev = asyncio.Event()
    try:
        await asyncio.wait_for(forever(ev), timeout=0.01)
    except asyncio.TimeoutError as exc:
        print("main: timed out:", type(exc).__name__)
    try:
        await asyncio.wait_for(slow_cleanup(ev), timeout=0.01)
    except asyncio.TimeoutError:
        print("main: timed out after cleanup")
    fut = asyncio.get_running_loop().create_future()
    fut.set_result("already")
    print("main: timeout=0 on a done future ->", await asyncio.wait_for(fut, timeout=0))
    try:
        await asyncio.wait_for(forever(ev), timeout=0)
    except asyncio.TimeoutError:
        print("main: timeout=0 on a coroutine timed out")

    async def outer() -> None:
        try:
            await asyncio.wait_for(forever(ev), timeout=60)
        except asyncio.CancelledError:
            print("outer: cancelled while in wait_for")
            raise

    t = asyncio.create_task(outer(), name="outer")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        print("main: outer cancelled", t.cancelled())


asyncio.run(main())
