"""Waits with a deadline: asyncio.wait_for and (3.11+) asyncio.timeout.

Each API is used twice: once around a wait that finishes well within its
deadline, once around a wait that cannot finish in time, where the TimeoutError
is caught and printed. The deadlines that expire are 5 ms; the ones that do not
are a generous second, never reached, so the output is the same on every run.
``asyncio.timeout`` is new in Python 3.11: on 3.10 that part says so.

Run it instrumented:  otel-asyncres run examples/timeouts.py

What to look at: the tasks ``wait_for-demo`` and ``timeout-demo``; the
``async_op sleep`` spans (``duration=1ms``) of the calls that made it, ending
``ok``; an ``async_op Event.wait`` on an Event nobody sets and an ``async_op
sleep`` of 1 s (``duration=1000ms``), both ending ``cancelled`` after 5 ms,
with the task's ``waker.drop`` and ``waker.wake (cancel)`` events; an
``async_op Queue.get`` woken by ``feeder`` in time; and, where the deadlines
are recorded, one ``async_op timeout`` span per deadline (``async_op
wait_for`` on 3.10 and 3.11) around what it guards, with the time it allowed
(``budget=5ms``) and ``expired=true`` for those that passed, ending ``ok`` or
``timed_out``. (On 3.10 and 3.11 ``wait_for`` runs the awaited coroutine in a
task of its own, e.g. ``task fetch``.)
"""

import asyncio
import sys


async def fetch(delay: float, reply: str) -> str:
    await asyncio.sleep(delay)  # stands in for a network round trip
    return reply


async def feed(inbox: asyncio.Queue) -> None:
    await inbox.put(await fetch(0.001, "hello"))


async def wait_for_demo() -> None:
    reply = await asyncio.wait_for(fetch(0.001, "pong"), timeout=1.0)
    print(f"wait_for: got {reply!r} in time")
    never_set = asyncio.Event()
    try:
        await asyncio.wait_for(never_set.wait(), timeout=0.005)
    except asyncio.TimeoutError:  # the builtin TimeoutError from 3.11 on
        print("wait_for: gave up on the event after 5 ms")


async def timeout_demo() -> None:
    if sys.version_info < (3, 11):
        print("asyncio.timeout needs Python 3.11 or later; skipped")
        return
    inbox: asyncio.Queue = asyncio.Queue()
    feeder = asyncio.create_task(feed(inbox), name="feeder")
    async with asyncio.timeout(1.0):
        print(f"timeout: got {await inbox.get()!r} in time")
    await feeder
    try:
        async with asyncio.timeout(0.005):
            await asyncio.sleep(1.0)  # far too slow: cancelled when the deadline passes
    except TimeoutError as exc:
        print(f"timeout: {type(exc).__name__} after 5 ms")


async def main() -> None:
    await asyncio.create_task(wait_for_demo(), name="wait_for-demo")
    await asyncio.create_task(timeout_demo(), name="timeout-demo")


if __name__ == "__main__":
    asyncio.run(main())
