"""Honouring the TracerProvider's sampler at the moment a trace begins.

A trace begins when a task is spawned outside any task and any application
span. If its trace is sampled out, the task and everything under it is left
untouched: nothing kept, no spans, one check per hook (DESIGN.md §4). So the sampler
is asked at spawn, on the event loop. For the samplers whose answer is known
in advance (always on, always off, and parent-based ones over those, the
usual configurations) nothing needs to be done; any other sampler decides on
the root task's span itself, started right there, which the bridge then
adopts, so that the sampler is asked once per trace and its decision is the
one exported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context

from .bridge import semconv as sc

#: Root-task spans started at spawn for the bridge, by task id.
Prestarted = dict[int, Any]


def root_sampler(
    provider: Any, tracer: Any, prestarted: Prestarted
) -> Callable[[int, str, int], bool] | None:
    """The decision for new traces, or None when every trace is recorded."""
    sampler = getattr(provider, "sampler", None)
    if sampler is None:  # not an SDK provider: its spans decide for themselves
        return None
    known = _known_answer(sampler)
    if known is True:
        return None
    if known is False:
        return _never

    def sample(task_id: int, name: str, now: int) -> bool:
        span = tracer.start_span(sc.TASK_SPAN.format(name), context=Context(), start_time=now)
        if not span.is_recording():
            return False
        prestarted[task_id] = span
        return True

    return sample


def _never(task_id: int, name: str, now: int) -> bool:
    return False


def _known_answer(sampler: Any) -> bool | None:
    """True or False for samplers that always say so for a trace's root."""
    description = str(sampler.get_description())
    root = (
        description.split("root:", 1)[1].split(",", 1)[0]
        if description.startswith("ParentBased{")
        else description
    )
    if root.startswith("AlwaysOnSampler"):
        return True
    if root.startswith("AlwaysOffSampler"):
        return False
    return None
