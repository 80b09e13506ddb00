"""An exception escaping asyncio.run: traceback on stderr and exit status 1."""

import asyncio

import _parity  # noqa: F401


class AppError(Exception):
    pass


async def fetch(n: int) -> int:
    print(f"fetch: {n}")
    await asyncio.sleep(0)
    if n == 2:
        raise KeyError(n)
    return n


async def handler() -> None:
    try:
        await asyncio.create_task(fetch(2), name="fetch-2")
    except KeyError as exc:
        raise AppError("handler failed") from exc


async def main() -> None:
    print("main: ->", await fetch(1))
    await handler()
    print("main: not reached")


asyncio.run(main())
print("not reached")
