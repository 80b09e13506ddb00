"""What a task sees of its own call stack: frames below it, f_back, stack_info logging.

Only the part of the stack from the program's own <module> frame inwards is
printed; how the program itself was launched is not part of the comparison.
"""

import asyncio
import logging
import sys
import traceback

import _parity  # noqa: F401


class FromModule(logging.Formatter):
    """Prints a stack_info stack from the program's <module> frame inwards."""

    def formatStack(self, stack_info: str) -> str:
        lines = stack_info.splitlines()
        start = max(i for i, line in enumerate(lines) if line.endswith(", in <module>"))
        return "\n".join([lines[0], *lines[start:]])


handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(FromModule("LOG %(message)s"))
log = logging.getLogger("stack")
log.addHandler(handler)
log.setLevel(logging.INFO)


def from_module(stack: traceback.StackSummary) -> list[str]:
    names = [f"{frame.name} ({frame.filename.rsplit('/', 1)[-1]})" for frame in stack]
    last_module = max(i for i, frame in enumerate(stack) if frame.name == "<module>")
    return names[last_module:]


async def child() -> None:
    print("child: stack", from_module(traceback.extract_stack()))
    print("child: f_back", sys._getframe().f_back.f_code.co_name)  # type: ignore[union-attr]
    await asyncio.sleep(0)
    print("child: stack after a wake-up", from_module(traceback.extract_stack()))


def callback() -> None:
    print("callback: stack", from_module(traceback.extract_stack()))


async def main() -> None:
    print("main: stack", from_module(traceback.extract_stack()))
    await asyncio.create_task(child(), name="child")
    asyncio.get_running_loop().call_soon(callback)
    await asyncio.sleep(0)
    frame = sys._getframe()
    depth = 0
    while frame.f_back is not None and frame.f_code.co_name != "<module>":
        frame = frame.f_back
        depth += 1
    print("main: frames between main and <module>:", depth)
    log.info("logging with stack_info", stack_info=True)


asyncio.run(main())
