"""3.11+: asyncio.timeout and timeout_at: expiring, not expiring, rescheduled, nested."""

import asyncio

from _parity import requires

requires((3, 11))


async def main() -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(60) as cm:
        print("main: inside timeout(60), expired?", cm.expired())
        await asyncio.sleep(0)
    print("main: left timeout(60), expired?", cm.expired())

    try:
        async with asyncio.timeout(0.01) as cm:
            print("main: inside timeout(0.01)")
            await asyncio.sleep(60)
    except TimeoutError as exc:
        print("main: TimeoutError", repr(exc), "cause", type(exc.__cause__).__name__, cm.expired())

    try:
        async with asyncio.timeout(None) as cm:
            print("main: timeout(None), when =", cm.when())
            cm.reschedule(loop.time() + 0.01)
            print("main: rescheduled, has deadline:", cm.when() is not None)
            await asyncio.sleep(60)
    except TimeoutError:
        print("main: rescheduled timeout expired")

    try:
        async with asyncio.timeout(60):
            try:
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(60)
            except TimeoutError:
                print("main: inner timeout expired, outer still fine")
            await asyncio.sleep(0)
            print("main: after inner timeout")
    except TimeoutError:
        print("main: outer expired (unexpected)")

    try:
        async with asyncio.timeout_at(loop.time() - 1):
            print("main: timeout_at in the past, body runs")
            await asyncio.sleep(0)
            print("main: not reached")
    except TimeoutError:
        print("main: timeout_at in the past expired at the first await")

    try:
        async with asyncio.timeout(0):
            print("main: timeout(0) body without await")
    except TimeoutError:
        print("main: timeout(0) raised (unexpected)")
    print("main: end")


asyncio.run(main())
