"""Async generators: aclose, athrow, early break, and one left for shutdown_asyncgens."""

import asyncio

import _parity  # noqa: F401


async def ticker(name: str, n: int):  # type: ignore[no-untyped-def]
    try:
        for i in range(n):
            print(f"{name}: yielding {i}")
            yield i
            await asyncio.sleep(0)
    except GeneratorExit:
        print(f"{name}: GeneratorExit")
        raise
    except ValueError as exc:
        print(f"{name}: got thrown {exc!r}")
        yield -1
    finally:
        print(f"{name}: finally")


async def main() -> None:
    async for v in ticker("full", 3):
        print("main: full got", v)

    g = ticker("closed", 10)
    print("main: first ->", await g.__anext__())
    print("main: second ->", await g.__anext__())
    await g.aclose()
    print("main: aclose done")

    g2 = ticker("thrown", 10)
    await g2.__anext__()
    print("main: athrow ->", await g2.athrow(ValueError("stop")))
    try:
        await g2.__anext__()
    except StopAsyncIteration:
        print("main: thrown generator exhausted")

    async for v in ticker("broken-out", 10):
        print("main: breaking at", v)
        break
    print("main: after break")

    global leftover
    leftover = ticker("leftover", 10)
    print("main: leftover first ->", await leftover.__anext__())
    print("main: returning with a suspended generator")


leftover = None
asyncio.run(main())
print("after run")
