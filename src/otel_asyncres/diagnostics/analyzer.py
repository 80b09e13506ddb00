"""The diagnostics stage: lints and deadlocks, inferred from the records.

It sits between the sources and the sinks (``recorder.Stage``): it sees each
record first and inserts the ``Diagnostic`` records it infers where they
belong, so that the bridge adds each one to its task's span before that span
ends. What the instrumentation finds itself (a long poll, a lost waker) passes
through here too: every diagnostic is logged (logger ``otel_asyncres``, the
first of each kind per task) and counted for the end-of-run summary.

Inferred here, as in Tokio Console's lints:

- *self-wakes*: more than ``self_wake_ratio`` of a task's wakes are its own
  (judged every ``SELF_WAKE_MIN_WAKES`` wakes and when it ends; a task that
  yields a couple of times is not worth a warning);
- *long wait*: an async op open longer than ``long_wait_ns`` (timers are
  not waits: a sleep lasts as long as it was asked to);
- *lost waker* for a task the garbage collector destroyed while pending;
- *deadlock*: a cycle in the wait-for graph (see ``deadlocks``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import time_ns
from typing import Any

from .. import records as r
from ..records import Diagnostic, Lint, Outcome, Severity, StateValue
from .deadlocks import Deadlock, WaitGraph

logger = logging.getLogger("otel_asyncres")

#: Wakes a task must have had before its self-wakes are judged.
SELF_WAKE_MIN_WAKES = 50

#: Resource kinds whose ops are not waits worth a warning: a timer lasts as
#: long as it was asked to, and waiting for a task (a worker, a group) for a
#: long time is what a task that delegates does.
_NOT_WAITS = frozenset({"Timer", "Task"})


@dataclass(frozen=True)
class DiagnosticOptions:
    """Which diagnostics are looked for (None: not that one)."""

    self_wake_ratio: float | None = 0.5
    long_wait_ns: int | None = 10_000_000_000
    lost_wakers: bool = True
    deadlocks: bool = True
    #: Called with each new deadlock (on the recorder's thread).
    on_deadlock: Callable[[Deadlock], Any] | None = None


class _Op:
    __slots__ = ("created", "location", "op_id", "resource_id", "source", "task_id")

    def __init__(self, rec: r.AsyncOpCreated, task_id: int) -> None:
        self.op_id = rec.op_id
        self.created = rec.ts
        self.task_id = task_id
        self.resource_id = rec.resource_id
        self.source = rec.source
        self.location = rec.location


class Diagnostics:
    """A recorder stage that infers diagnostics and reports every one."""

    def __init__(self, options: DiagnosticOptions | None = None) -> None:
        self.options = options = options or DiagnosticOptions()
        #: Live tasks, kept as columns of plain values rather than an object
        #: per task (one more for the cyclic garbage collector to walk at
        #: each full collection, for each of tens of thousands of tasks):
        #: names, where they were spawned, wakes and self-wakes (from the
        #: first), the kinds already logged (for the few that have one).
        self._names: dict[int, str] = {}
        self._spawned_at: dict[int, r.Location | None] = {}
        self._wakes: dict[int, int] = {}
        self._self_wakes: dict[int, int] = {}
        self._warned: dict[int, set[str]] = {}
        self._resources: dict[int, tuple[str, str]] = {}
        self._ops: dict[int, _Op] = {}
        self._graph = WaitGraph(self._name_of) if options.deadlocks else None
        #: Diagnostics reported, by kind, for the end-of-run summary.
        self.counts: dict[str, int] = {}
        self.errors = 0
        self._out: list[r.Record] = []
        self._handlers: dict[type, Callable[[Any], None]] = {
            r.TaskSpawned: self._task_spawned,
            r.TaskNamed: self._task_named,
            r.TaskWoken: self._task_woken,
            r.TaskPollStarted: self._poll_started,
            r.WakerCloned: self._parked,
            r.TaskClosed: self._task_closed,
            r.ResourceCreated: self._resource_created,
            r.ResourceClosed: self._resource_closed,
            r.ResourceHeld: self._held,
            r.ResourceReleased: self._released,
            r.AsyncOpCreated: self._op_created,
            r.AsyncOpClosed: self._op_closed,
            r.Diagnostic: self._report,
        }

    # -- Stage ---------------------------------------------------------------------

    def process(self, records: Sequence[r.Record]) -> Sequence[r.Record]:
        out = self._out = []
        handlers = self._handlers
        for record in records:
            handler = handlers.get(type(record))
            if handler is not None:
                try:
                    handler(record)
                except Exception:
                    self.errors += 1
            if type(record) is not Diagnostic:
                out.append(record)
        return out

    def tick(self, now: int) -> Sequence[r.Record]:
        self._out = []
        try:
            self._long_waits(now)
        except Exception:
            self.errors += 1
        return self._out

    def flush(self, final: bool = False) -> Sequence[r.Record]:
        return self.tick(time_ns()) if final else ()

    # -- reporting ---------------------------------------------------------------------

    def _diagnose(
        self, ts: int, kind: str, task_id: int, severity: str, message: str, attributes: dict[str, StateValue]
    ) -> None:
        self._report(Diagnostic(ts, kind, task_id, severity, message, attributes))

    def _report(self, rec: Diagnostic) -> None:
        """Every diagnostic, found here or by the instrumentation: on to the
        sinks, counted, and logged (once per kind and task)."""
        self._out.append(rec)
        self.counts[rec.kind] = self.counts.get(rec.kind, 0) + 1
        task_id = rec.task_id
        if self._warned_of(task_id, rec.kind):
            return
        name = self._names.get(task_id)
        label = f"task {name} #{task_id}" if name is not None else f"task #{task_id}"
        if name is not None:
            self._warned.setdefault(task_id, set()).add(rec.kind)
            location = self._spawned_at.get(task_id)
            if location is not None:
                label += f" (spawned at {location})"
        level = logging.ERROR if rec.severity == Severity.ERROR else logging.WARNING
        logger.log(level, "%s: %s: %s", rec.kind.replace("_", " "), label, rec.message)

    # -- tasks ----------------------------------------------------------------------------

    def _warned_of(self, task_id: int, kind: str) -> bool:
        warned = self._warned.get(task_id)
        return warned is not None and kind in warned

    def _task_spawned(self, rec: r.TaskSpawned) -> None:
        self._names[rec.task_id] = rec.coroutine
        self._spawned_at[rec.task_id] = rec.location

    def _task_named(self, rec: r.TaskNamed) -> None:
        if rec.task_id in self._names:
            self._names[rec.task_id] = rec.name

    def _name_of(self, task_id: int) -> str:
        return self._names.get(task_id, "?")

    def _task_woken(self, rec: r.TaskWoken) -> None:
        task_id = rec.task_id
        if task_id in self._names:
            wakes = self._wakes[task_id] = self._wakes.get(task_id, 0) + 1
            if rec.waker_id == task_id:
                self._self_wakes[task_id] = self._self_wakes.get(task_id, 0) + 1
            if wakes % SELF_WAKE_MIN_WAKES == 0:  # judged every so many wakes, and at its end
                self._self_wake_share(task_id, rec.ts)
        if self._graph is not None:
            self._graph.unparked(rec.task_id)

    def _poll_started(self, rec: r.TaskPollStarted) -> None:
        if self._graph is not None:
            self._graph.unparked(rec.task_id)

    def _parked(self, rec: r.WakerCloned) -> None:
        if self._graph is None:
            return
        deadlock = self._graph.parked(rec.task_id)
        if deadlock is not None:
            self._deadlock(rec.ts, deadlock)

    def _task_closed(self, rec: r.TaskClosed) -> None:
        task_id = rec.task_id
        if task_id in self._names:
            self._self_wake_share(task_id, rec.ts)
            lost = rec.outcome == Outcome.LOST and self.options.lost_wakers
            if lost and not self._warned_of(task_id, Lint.LOST_WAKER):
                message = "destroyed while pending: nothing could wake it any more"
                self._diagnose(rec.ts, Lint.LOST_WAKER, task_id, Severity.ERROR, message, {})
            for column in (self._names, self._spawned_at, self._wakes, self._self_wakes, self._warned):
                column.pop(task_id, None)
        if self._graph is not None:
            self._graph.task_closed(task_id)

    def _self_wake_share(self, task_id: int, now: int) -> None:
        ratio = self.options.self_wake_ratio
        wakes = self._wakes.get(task_id, 0)
        if ratio is None or wakes < SELF_WAKE_MIN_WAKES or self._warned_of(task_id, Lint.SELF_WAKES):
            return
        self_wakes = self._self_wakes.get(task_id, 0)
        share = self_wakes / wakes
        if share > ratio:
            message = (
                f"{self_wakes} of its {wakes} wakes ({share:.0%}) were its own: "
                "it yields to the loop rather than waiting for something"
            )
            attributes: dict[str, StateValue] = {
                "wakes": wakes,
                "self_wakes": self_wakes,
                "threshold": ratio,
            }
            self._diagnose(now, Lint.SELF_WAKES, task_id, Severity.WARNING, message, attributes)

    # -- resources and ops ------------------------------------------------------------------

    def _resource_created(self, rec: r.ResourceCreated) -> None:
        self._resources[rec.resource_id] = (rec.concrete_type, rec.kind)
        if self._graph is not None:
            self._graph.resource_created(rec.resource_id, rec.concrete_type, rec.task_id, rec.held_through)

    def _resource_closed(self, rec: r.ResourceClosed) -> None:
        self._resources.pop(rec.resource_id, None)
        if self._graph is not None:
            self._graph.resource_closed(rec.resource_id)

    def _held(self, rec: r.ResourceHeld) -> None:
        if self._graph is not None:
            self._graph.held(rec.resource_id, rec.task_id)

    def _released(self, rec: r.ResourceReleased) -> None:
        if self._graph is not None:
            self._graph.released(rec.resource_id, rec.task_id)

    def _op_created(self, rec: r.AsyncOpCreated) -> None:
        if rec.task_id is None:
            return
        kind = self._resources.get(rec.resource_id, ("", ""))[1]
        if self.options.long_wait_ns is not None and kind not in _NOT_WAITS:
            self._ops[rec.op_id] = _Op(rec, rec.task_id)
        if self._graph is not None:
            self._graph.op_created(rec.op_id, rec.task_id, rec.resource_id, rec.source, rec.location)

    def _op_closed(self, rec: r.AsyncOpClosed) -> None:
        op = self._ops.pop(rec.op_id, None)
        if op is not None:
            self._long_wait(op, rec.ts, ended=True)
        if self._graph is not None:
            self._graph.op_closed(rec.op_id)

    def _long_waits(self, now: int) -> None:
        """The ops open for long enough, oldest first (the dict keeps creation
        order): the first one that is not stops the walk, and one reported
        is let go, so each tick looks at what is new only."""
        limit = self.options.long_wait_ns
        if limit is None:
            return
        due = []
        for op in self._ops.values():
            if now - op.created < limit:
                break
            due.append(op)
        for op in due:
            del self._ops[op.op_id]
            self._long_wait(op, now, ended=False)

    def _long_wait(self, op: _Op, now: int, ended: bool) -> None:
        """Report an op that has waited long enough (it has left ``_ops``: once)."""
        limit = self.options.long_wait_ns
        waited = now - op.created
        if limit is None or waited < limit:
            return
        concrete_type = self._resources.get(op.resource_id, ("a resource", ""))[0]
        where = f" at {op.location}" if op.location is not None else ""
        message = (
            f"waited {waited / 1e9:.1f} s{' ' if ended else ' so far '}in {op.source} on "
            f"{concrete_type} #{op.resource_id}{where}"
        )
        attributes: dict[str, StateValue] = {
            "duration": waited / 1e9,
            "threshold": limit / 1e9,
            "op_id": op.op_id,
            "resource_id": op.resource_id,
            "source": op.source,
        }
        if op.location is not None:
            attributes["awaited_at"] = str(op.location)
        self._diagnose(now, Lint.LONG_WAIT, op.task_id, Severity.WARNING, message, attributes)

    # -- deadlocks -------------------------------------------------------------------------------

    def _deadlock(self, ts: int, deadlock: Deadlock) -> None:
        """A ``deadlock`` on every task of the cycle, naming the whole cycle."""
        cycle = deadlock.describe()
        ids = ",".join(str(t.task_id) for t in deadlock.tasks)
        for member in deadlock.tasks:
            attributes: dict[str, StateValue] = {
                "cycle": cycle,
                "tasks": ids,
                "resource_id": member.resource_id,
                "source": member.source,
                "waits_for": member.waits_for,
            }
            message = f"deadlocked: {cycle}"
            self._diagnose(ts, Lint.DEADLOCK, member.task_id, Severity.ERROR, message, attributes)
        callback = self.options.on_deadlock
        if callback is not None:
            try:
                callback(deadlock)
            except Exception:
                self.errors += 1
