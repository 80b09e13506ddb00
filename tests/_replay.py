"""Replaying a resource's exported state, and reading the real one.

Shared by the primitive tests. ``real_state`` reads what asyncio itself keeps
in the object (never through the instrumentation); ``replay_spans`` applies
the ``state_update`` events of one resource's exported spans (each window
opens with the whole state, as Tokio opens a resource's span), in order, the
way a reader of the trace does: from the spans alone.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Sequence
from time import time_ns
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

import otel_asyncres
from conftest import Traced
from otel_asyncres.bridge import semconv as sc

ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
PACKAGE_DIR = os.path.dirname(otel_asyncres.__file__) + os.sep
RID = sc.RESOURCE_ID

BARRIER: Any = getattr(asyncio, "Barrier", None)


def real_state(obj: Any) -> dict[str, Any]:
    """The primitive's state as asyncio holds it, under the contract's names."""
    if isinstance(obj, asyncio.Queue):
        state = {
            "size": obj.qsize(),
            "maxsize": obj.maxsize,
            "getters": len(obj._getters),
            "putters": len(obj._putters),
            "unfinished_tasks": obj._unfinished_tasks,
        }
        if hasattr(obj, "_is_shutdown"):
            state["shutdown"] = obj._is_shutdown
        return state
    if isinstance(obj, asyncio.Semaphore):  # and BoundedSemaphore
        return {"permits": obj._value, "waiters": len(obj._waiters or ())}
    if isinstance(obj, asyncio.Lock):
        return {"locked": obj.locked(), "waiters": len(obj._waiters or ())}
    if isinstance(obj, asyncio.Event):
        return {"is_set": obj.is_set(), "waiters": len(obj._waiters)}
    if isinstance(obj, asyncio.Condition):
        return {"waiters": len(obj._waiters)}
    if BARRIER is not None and isinstance(obj, BARRIER):
        return {"parties": obj.parties, "arrived": obj.n_waiting, "broken": obj.broken}
    raise TypeError(f"not a primitive: {obj!r}")


def apply(state: dict[str, Any], attribute: str, value: Any, op: str) -> None:
    if op == "add":
        state[attribute] += value
    elif op == "sub":
        state[attribute] -= value
    else:
        assert op == "override", op
        state[attribute] = value


def resource_spans(spans: Sequence[ReadableSpan], rid: int) -> list[ReadableSpan]:
    """The spans (windows) of resource ``rid``, in order."""
    found = [s for s in spans if s.name.startswith("resource ") and s.attributes.get(RID) == rid]
    return sorted(found, key=lambda s: (s.start_time or 0, s.attributes.get(sc.WINDOW_INDEX, 0)))


def state_events(spans: Sequence[ReadableSpan]) -> list[tuple[int, dict[str, Any]]]:
    """Every ``state_update`` of these spans, in order: (time, attributes)."""
    found = []
    for index, span in enumerate(spans):
        for order, event in enumerate(span.events):
            if event.name == "state_update":
                found.append((event.timestamp, index, order, dict(event.attributes or {})))
    found.sort(key=lambda e: e[:3])
    return [(ts, attrs) for ts, _, _, attrs in found]


def replay_events(events: Sequence[tuple[int, dict[str, Any]]], until: int | None = None) -> dict[str, Any]:
    """The state after the events (up to time ``until``): the first must be
    the whole state, as a span opens with it."""
    state: dict[str, Any] | None = None
    for ts, attributes in events:
        if until is not None and ts > until:
            break
        names = [k for k in attributes if not k.endswith((".op", ".unit"))]
        if state is None:
            assert all(attributes[f"{n}.op"] == "override" for n in names), f"a span opens with {attributes}"
            state = {}
        for name in names:
            op = attributes[f"{name}.op"]
            if op in ("add", "sub"):
                assert isinstance(attributes[name], int) and attributes[name] > 0, attributes
                assert name in state, f"{op} of unknown {name}"
            apply(state, name, attributes[name], op)
    assert state is not None, "no state_update at all"
    return state


def replay_span(span: Any) -> dict[str, Any]:
    """The state after replaying one span's ``state_update`` events alone."""
    return replay_events(state_events([span]))


# -- checkpoints -------------------------------------------------------------------------


class Checker:
    """Checkpoints taken inside a program, verified against the exported spans after it."""

    def __init__(self, traced: Traced) -> None:
        self.traced = traced
        self.registry = traced.session.instrumentation.resources
        self.tracker = traced.session.instrumentation.tasks
        #: (label, resource id, when, real state then)
        self.points: list[tuple[str, int, int, dict[str, Any]]] = []
        #: Every object checked, by resource id (kept alive until verified).
        self.objects: dict[int, Any] = {}
        self._ids: dict[int, tuple[weakref.ref[Any], int]] = {}

    def rid(self, obj: Any) -> int:
        """The resource id of ``obj`` (remembered: asked again after the
        session ended, it is still known)."""
        known = self._ids.get(id(obj))
        if known is not None and known[0]() is obj:
            return known[1]
        rs = self.registry.get(obj)
        assert rs is not None, f"{type(obj).__name__} is not a resource"
        self._ids[id(obj)] = (weakref.ref(obj), rs.id)  # weakly: a test may let it be collected
        return rs.id

    def check(self, label: str, *objs: Any) -> None:
        """Note the real state of ``objs``, and when."""
        now = time_ns()
        for obj in objs:
            rid = self.rid(obj)
            self.objects[rid] = obj
            self.points.append((label, rid, now, real_state(obj)))

    def _name(self, rid: int) -> str:
        return f"{type(self.objects[rid]).__name__} (resource {rid})"

    def holders(self, obj: Any) -> list[int]:
        rs = self.registry.get(obj)
        assert rs is not None
        return [st.id for st in rs.holders]

    def task_id(self, task: Any = None) -> int:
        """The id of ``task`` (default: the task running now)."""
        st = self.tracker.current() if task is None else self.tracker.state_of(task)
        assert st is not None
        return st.id

    def internal(self, obj: Any) -> bool:
        return self.resource(obj).internal

    def resource(self, obj: Any) -> Any:
        """The instrumentation's state of a live resource (a ResourceState)."""
        rs = self.registry.get(obj)
        assert rs is not None, f"{type(obj).__name__} is not a resource"
        return rs

    def verify(self, *objs: Any) -> list[ReadableSpan]:
        """Check every checkpoint, then the final state of every object seen
        (plus ``objs``), from the exported spans alone; returns the spans."""
        for obj in objs:
            self.objects[self.rid(obj)] = obj
        internal = {rid for rid, obj in self.objects.items() if self.internal(obj)}

        finals = {rid: real_state(obj) for rid, obj in self.objects.items()}
        assert self.traced.session.handoff.errors == {}, "the instrumentation counted internal errors"
        spans = self.traced.spans()
        wrong = []
        points = [*self.points, *(("the end", rid, None, real) for rid, real in finals.items())]
        for label, rid, when, real in points:
            found = resource_spans(spans, rid)
            if rid in internal and not found:
                continue  # internal resources get no span unless asked for
            try:
                replayed: Any = replay_events(state_events(found), when)
            except AssertionError as exc:
                replayed = f"nothing ({exc})"
            if replayed != real:
                wrong.append(f"at {label!r}, {self._name(rid)}: replayed {replayed}, real {real}")
        assert not wrong, "replayed state differs from the real state:\n" + "\n".join(wrong)
        for rid, real in finals.items():
            found = resource_spans(spans, rid)
            if rid in internal:
                assert found == [], "internal resources get no span by default"
                continue
            for span in found:  # each window alone replays to the state at its end
                assert replay_span(span) == final_attributes(span, real), f"window of resource {rid}"
            assert final_attributes(found[-1], real) == real, f"final attributes of resource {rid}"
        check_locations(spans)
        return spans


def final_attributes(span: ReadableSpan, initial: dict[str, Any]) -> dict[str, Any]:
    return {k: span.attributes[sc.RESOURCE_STATE_PREFIX + k] for k in initial}


def check_locations(spans: list[ReadableSpan]) -> None:
    """code.* never points at asyncio or at this package."""
    for span in spans:
        path = span.attributes.get(sc.CODE_FILE_PATH)
        if path is not None:
            assert not path.startswith((ASYNCIO_DIR, PACKAGE_DIR)), (span.name, path)
