"""KeyboardInterrupt raised inside a task: traceback, and death by SIGINT."""

import asyncio

import _parity  # noqa: F401


async def child() -> None:
    print("child: raising KeyboardInterrupt")
    await asyncio.sleep(0)
    raise KeyboardInterrupt


async def main() -> None:
    try:
        await asyncio.create_task(child(), name="child")
    finally:
        print("main: finally")


asyncio.run(main())
