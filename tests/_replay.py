"""Replaying a resource's recorded state, and reading the real one.

Shared by the primitive tests. ``real_state`` reads what asyncio itself keeps
in the object (never through the instrumentation); ``replay`` applies the
``ResourceStateUpdated`` records of one resource, in order, over the state of
its ``ResourceCreated`` record, the way a reader of the trace does.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

import otel_asyncres
from conftest import Traced
from otel_asyncres import records as r
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


def created(records: Sequence[Any], rid: int) -> r.ResourceCreated:
    found = [x for x in records if isinstance(x, r.ResourceCreated) and x.resource_id == rid]
    assert len(found) == 1, f"resource {rid}: {len(found)} creation records"
    return found[0]


def replay(records: Sequence[Any], rid: int) -> dict[str, Any]:
    """The state of resource ``rid`` after the given records."""
    state: dict[str, Any] | None = None
    for x in records:
        if isinstance(x, r.ResourceCreated) and x.resource_id == rid:
            assert state is None, f"resource {rid} created twice"
            state = dict(x.state)
        elif isinstance(x, r.ResourceStateUpdated) and x.resource_id == rid:
            assert state is not None, f"resource {rid}: state update before creation"
            # (an attribute missing from the initial state can only be overridden;
            # test_primitives checks separately that initial states are complete)
            assert x.attribute in state or x.op == "override", (
                f"resource {rid}: {x.op} of unknown {x.attribute}"
            )
            if x.op in ("add", "sub"):
                assert isinstance(x.value, int) and x.value > 0, x
            apply(state, x.attribute, x.value, x.op)
    assert state is not None, f"resource {rid} was never created"
    return state


def replay_span(span: Any, initial: dict[str, Any]) -> dict[str, Any]:
    """The state after replaying a resource span's ``state_update`` events."""
    state = dict(initial)
    for event in span.events:
        if event.name != "state_update":
            continue
        names = [k for k in event.attributes if not k.endswith((".op", ".unit"))]
        assert len(names) == 1, dict(event.attributes)
        (name,) = names
        apply(state, name, event.attributes[name], event.attributes[f"{name}.op"])
    return state


# -- checkpoints -------------------------------------------------------------------------


class Checker:
    """Checkpoints taken inside a program, verified against the records after it."""

    def __init__(self, traced: Traced) -> None:
        self.traced = traced
        self.registry = traced.session.instrumentation.resources
        self.tracker = traced.session.instrumentation.tasks
        #: (label, resource id, number of records so far, real state then)
        self.points: list[tuple[str, int, int, dict[str, Any]]] = []
        #: Every object checked, by resource id (kept alive until verified).
        self.objects: dict[int, Any] = {}

    def rid(self, obj: Any) -> int:
        rs = self.registry.get(obj)
        assert rs is not None, f"{type(obj).__name__} is not a resource"
        return rs.id

    def check(self, label: str, *objs: Any) -> None:
        """Note the real state of ``objs`` and where the record stream is."""
        self.traced.flush()
        n = len(self.traced.sink.records)
        for obj in objs:
            rid = self.rid(obj)
            self.objects[rid] = obj
            self.points.append((label, rid, n, real_state(obj)))

    def _name(self, rid: int) -> str:
        return f"{type(self.objects[rid]).__name__} (resource {rid})"

    def holders(self, obj: Any) -> list[int]:
        rs = self.registry.get(obj)
        assert rs is not None
        return list(rs.holders)

    def task_id(self, task: Any = None) -> int:
        """The id of ``task`` (default: the task running now)."""
        st = self.tracker.current() if task is None else self.tracker.state_of(task)
        assert st is not None
        return st.id

    def verify(self, *objs: Any) -> list[ReadableSpan]:
        """Check every checkpoint, then the final state of every object seen
        (plus ``objs``) in the records and on its span; returns the spans."""
        for obj in objs:
            self.objects[self.rid(obj)] = obj
        records = list(self.traced.records())
        wrong = []
        points = [*self.points]
        finals = {rid: real_state(obj) for rid, obj in self.objects.items()}
        points += [("the end", rid, len(records), real) for rid, real in finals.items()]
        for label, rid, n, real in points:
            try:
                replayed: Any = replay(records[:n], rid)
            except AssertionError as exc:
                replayed = f"nothing ({exc})"
            if replayed != real:
                wrong.append(f"at {label!r}, {self._name(rid)}: replayed {replayed}, real {real}")
        assert not wrong, "replayed state differs from the real state:\n" + "\n".join(wrong)
        assert self.traced.session.recorder.errors == {}, "the instrumentation counted internal errors"
        spans = self.traced.spans()
        for rid, real in finals.items():
            rec = created(records, rid)
            found = [s for s in spans if s.name.startswith("resource ") and s.attributes[RID] == rid]
            if rec.is_internal:
                assert found == [], "internal resources get no span by default"
                continue
            (span,) = found
            assert replay_span(span, rec.state) == real, f"span events of resource {rid}"
            assert final_attributes(span, real) == real, f"final attributes of resource {rid}"
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
