"""Shared set-up for the parity corpus; not a corpus program itself.

Every corpus program imports this module first. ``PARITY_LOOP`` selects what it
runs on, through the event loop policy, so that ``asyncio.run()`` and
``asyncio.new_event_loop()`` both honour it:

- ``asyncio``: the default loop and the C Task (the default);
- ``pytask``: the default loop with the pure-Python Task, set as task factory;
- ``uvloop``: uvloop's loop.

A program states what it needs with ``requires((3, 11))``: on an older Python it
prints one SKIP line and exits 0, so that the parity test treats every program
the same way on every version.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

VARIANT = os.environ.get("PARITY_LOOP", "asyncio")


def _py_task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
    return asyncio.tasks._PyTask(coro, loop=loop, **kwargs)  # type: ignore[attr-defined,no-any-return]


def _install() -> None:
    if VARIANT == "asyncio":
        return
    if VARIANT == "uvloop":
        import uvloop

        base: Any = uvloop.EventLoopPolicy
    elif VARIANT == "pytask":
        base = asyncio.DefaultEventLoopPolicy
    else:
        raise SystemExit(f"unknown PARITY_LOOP {VARIANT!r}")

    class Policy(base):  # type: ignore[misc,valid-type]
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            loop: asyncio.AbstractEventLoop = super().new_event_loop()
            if VARIANT == "pytask":
                loop.set_task_factory(_py_task_factory)
            return loop

    asyncio.set_event_loop_policy(Policy())


def requires(version: tuple[int, int]) -> None:
    """Exit with one SKIP line when this Python is older than ``version``."""
    if sys.version_info < version:
        print(f"SKIP: needs Python {version[0]}.{version[1]}+")
        sys.exit(0)


def cancelling(task: asyncio.Task[Any]) -> object:
    """``task.cancelling()`` where it exists (3.11+), else the string 'n/a'."""
    method = getattr(task, "cancelling", None)
    return method() if method is not None else "n/a"


_install()
