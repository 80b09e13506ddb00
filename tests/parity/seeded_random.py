"""A program that seeds the ``random`` module draws the same numbers
instrumented: span and trace ids come from a generator of the
instrumentation's own, not from the program's (the SDK's default id generator
draws from ``random``'s, so every span moved the program's sequence; and a
program that seeds ``random`` again, as regrtest does before every test file,
made the ids repeat).
"""

import asyncio
import random

import _parity  # noqa: F401


async def child(i: int) -> int:
    await asyncio.sleep(0.005)
    return i


async def main() -> None:
    random.seed(11)
    print("main: before:", random.random())
    print("main: children:", await asyncio.gather(*(asyncio.create_task(child(i)) for i in range(5))))
    await asyncio.sleep(0.2)  # time for the spans of the children to be made
    print("main: after:", random.random())
    random.seed(11)
    print("main: seeded again:", random.random())


asyncio.run(main())
print("end:", random.getrandbits(64))
