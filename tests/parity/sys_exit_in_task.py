"""sys.exit() inside a task: SystemExit goes through the loop and sets the exit status."""

import asyncio
import sys

import _parity  # noqa: F401


async def child() -> None:
    print("child: calling sys.exit(3)")
    await asyncio.sleep(0)
    sys.exit(3)


async def bystander() -> None:
    try:
        print("bystander: waiting")
        await asyncio.sleep(3600)
    finally:
        print("bystander: finally")


async def main() -> None:
    asyncio.create_task(bystander(), name="bystander")
    t = asyncio.create_task(child(), name="child")
    try:
        await t
    finally:
        print("main: finally, child done?", t.done())


try:
    asyncio.run(main())
finally:
    print("after run")
