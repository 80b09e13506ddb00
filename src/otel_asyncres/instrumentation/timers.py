"""Timers: ``asyncio.sleep`` as a resource of kind Timer.

Each sleep that waits is its own resource (Tokio's ``Sleep``), made when the
task parks in it and ended when the sleep is over; its op is ``sleep``. The
resource is keyed by the sleep's coroutine object, which lives exactly as long
as the sleep. ``sleep(0)`` does not wait on a timer: it is a yield, recorded
as the task waking itself.
"""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

from ..records import StateValue
from .operations import ALWAYS, OperationWaits, OpSpec
from .resources import Family, ResourceRegistry


def _sleep_state(coro: Any) -> dict[str, StateValue]:
    return {"duration": float(coro.cr_frame.f_locals["delay"]) * 1000.0}


SLEEP = Family(None, "asyncio.sleep", "Timer", _sleep_state, units={"duration": "ms"})


def _sleep_coroutine(frame: FrameType, coro: Any) -> Any:
    return coro


def install(registry: ResourceRegistry, waits: OperationWaits) -> None:
    waits.add(
        asyncio.tasks.sleep,
        OpSpec("sleep", SLEEP, ALWAYS, resource=_sleep_coroutine, closes_resource=True),
    )
