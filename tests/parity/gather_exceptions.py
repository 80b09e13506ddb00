"""gather() with return_exceptions=True and False; siblings keep running; cancel a gather."""

import asyncio

import _parity  # noqa: F401


async def ok(name: str, steps: int) -> str:
    for i in range(steps):
        print(f"{name}: step {i}")
        await asyncio.sleep(0)
    print(f"{name}: returning")
    return name


async def bad(name: str, steps: int) -> str:
    for i in range(steps):
        print(f"{name}: step {i}")
        await asyncio.sleep(0)
    print(f"{name}: raising")
    raise ValueError(name)


async def main() -> None:
    res = await asyncio.gather(ok("a", 2), bad("b", 1), ok("c", 3), return_exceptions=True)
    print("main: return_exceptions=True ->", [repr(x) for x in res])

    ta = asyncio.create_task(ok("d", 4), name="d")
    try:
        await asyncio.gather(ta, bad("e", 1), ok("f", 1))
    except ValueError as exc:
        print("main: gather raised", repr(exc), "d done?", ta.done())
    print("main: d still finishes ->", await ta)

    g = asyncio.gather(ok("g", 5), ok("h", 5))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    print("main: cancel gather ->", g.cancel())
    try:
        await g
    except asyncio.CancelledError:
        print("main: gather cancelled", g.cancelled())

    res = await asyncio.gather()
    print("main: empty gather ->", res)
    res = await asyncio.gather(bad("i", 0), bad("j", 0), return_exceptions=True)
    print("main: two failures ->", [repr(x) for x in res])


asyncio.run(main())
