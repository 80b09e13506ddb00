"""Tokio Console's lints, and more, found on the loop from the state kept there.

Each lint reads what the hooks keep in place: a poll's duration at its end,
a task's wakes and self-wakes, the ops tasks are parked in, the holders of
locks and permits. Nothing is made per event to find them.

- ``long_poll``: a poll that blocked the event loop (at the poll's end);
- ``self_wakes``: more than ``self_wake_ratio`` of a task's wakes were its own
  (judged every ``SELF_WAKE_MIN_WAKES`` wakes and when it ends);
- ``long_wait``: an async op open longer than ``long_wait_ns`` (in the loop's
  sweep; timers and joins are not waits for something);
- ``lost_waker``: a task parked on something nothing else can reach
  (``lost_wakers``), or destroyed while pending;
- ``deadlock``: a cycle in the wait-for graph (``deadlocks``), when a task parks.

A finding is a ``LINT`` event on its task, always kept (the task becomes a
span whatever the budget) and counted for the exit summary. It is logged
(once per kind and task, to the ``otel_asyncres`` logger) only with
``log_diagnostics``: diagnostics are data, and a program's own log stream
must stay what it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from time import time_ns
from typing import TYPE_CHECKING, Any

from ..instrumentation.frames import await_chain, innermost_user_frame, location_of
from ..model import Entity, Event, Fate, Location, Outcome, StateValue
from .deadlocks import Deadlock, DeadlockDetector

if TYPE_CHECKING:
    from ..instrumentation.task_state import TaskState
    from ..instrumentation.tasks import TaskTracker
    from ..instrumentation.waits import Wait
    from ..showing import Policy

logger = logging.getLogger("otel_asyncres")

#: Wakes a task must have had before its self-wakes are judged.
SELF_WAKE_MIN_WAKES = 50

#: Resource kinds whose ops are not waits worth a warning: a timer lasts as
#: long as it was asked to, waiting for a task (a worker, a group) for a
#: long time is what a task that delegates does, and a read on an idle
#: connection or a wait for a subprocess waits on the world outside.
_NOT_WAITS = frozenset({"Timer", "Task", "IO", "Process"})


class Lint:
    """The kinds of diagnostic: the names of their span events."""

    LONG_POLL = "long_poll"
    SELF_WAKES = "self_wakes"
    LOST_WAKER = "lost_waker"
    LONG_WAIT = "long_wait"
    DEADLOCK = "deadlock"

    ALL = (LONG_POLL, SELF_WAKES, LOST_WAKER, LONG_WAIT, DEADLOCK)


class Severity:
    """How bad a diagnostic is: an error marks its span's status."""

    WARNING = "warning"
    ERROR = "error"


#: A diagnostic's attribute: a state value, or ids (the tasks of a deadlock).
LintValue = StateValue | list[int]


def named_by(wait: Wait) -> tuple[Entity | None, ...]:
    """What a diagnostic about ``wait`` names by id: the op if it is one
    (showing an op shows its resource), else its resource."""
    return (wait,) if wait.id else (wait.resource,)


@dataclass(frozen=True)
class LintOptions:
    """Which diagnostics are looked for (None or False: not that one)."""

    long_poll_ns: int | None = 100_000_000
    self_wake_ratio: float | None = 0.5
    long_wait_ns: int | None = 10_000_000_000
    lost_wakers: bool = True
    deadlocks: bool = True
    #: Called with each new deadlock, on the hand-off's thread.
    on_deadlock: Callable[[Deadlock], Any] | None = None
    #: Log each diagnostic to the ``otel_asyncres`` logger too (once per
    #: kind and task). Off by default: a program that asserts on its own log
    #: records must see the same records instrumented.
    log: bool = False

    def any(self) -> bool:
        limits = (self.long_poll_ns, self.self_wake_ratio, self.long_wait_ns)
        return any(limit is not None for limit in limits) or self.lost_wakers or self.deadlocks


class Lints:
    """The diagnostics the task tracker calls on the loop."""

    def __init__(
        self,
        options: LintOptions,
        policy: Policy,
        tracker: TaskTracker,
        call_later: Callable[[Callable[[], None]], None],
    ) -> None:
        self.options = options
        self._policy = policy
        self._tracker = tracker
        self._call_later = call_later
        self._deadlocks = DeadlockDetector() if options.deadlocks else None
        #: Diagnostics reported, by kind, for the exit summary.
        self.counts: dict[str, int] = {}

    # -- reporting -----------------------------------------------------------------------

    def report(
        self,
        st: TaskState,
        now: int,
        kind: str,
        severity: str,
        message: str,
        attributes: Mapping[str, LintValue],
        named: Iterable[Entity | None] = (),
    ) -> None:
        """A finding about a task: an event on its span (made a span for it),
        counted, and logged once per kind and task if asked for. What its
        attributes name by id (``named``: an op, a resource) is shown too, so
        that every id in the trace resolves to a span."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        first = st.lints is None or kind not in st.lints
        if st.lints is None:
            st.lints = set()
        st.lints.add(kind)
        flat = tuple(item for pair in attributes.items() for item in pair)
        self._policy.must_keep(st, (Event.LINT, now, kind, severity, message, flat))
        for entity in named:
            if entity is not None and entity.fate == Fate.UNDECIDED:
                self._policy.show(entity)
        if first and self.options.log:
            label = f"task {st.label()} #{st.id}"
            if st.location is not None:
                label += f" (spawned at {st.location})"
            level = logging.ERROR if severity == Severity.ERROR else logging.WARNING
            logger.log(level, "%s: %s: %s", kind.replace("_", " "), label, message)

    def lost_waker(
        self, st: TaskState, message: str, attributes: Mapping[str, LintValue], wait: Wait
    ) -> None:
        """From the lost-waker check (``lost_wakers``), on the loop."""
        self.report(st, time_ns(), Lint.LOST_WAKER, Severity.ERROR, message, attributes, named_by(wait))

    # -- the tracker's calls ---------------------------------------------------------------

    def poll_ended(self, st: TaskState, task: Any, now: int) -> None:
        limit = self.options.long_poll_ns
        if limit is not None and now - st.poll_ts >= limit:
            self._long_poll(st, task, now, limit)

    def woken(self, st: TaskState, now: int) -> None:
        if st.wakes % SELF_WAKE_MIN_WAKES == 0:  # judged every so many wakes, and at its end
            self._self_wakes(st, now)
        if self._deadlocks is not None:
            self._deadlocks.woken(st)

    def parked(self, st: TaskState, wait: Wait, now: int) -> None:
        if self._deadlocks is None:
            return
        deadlock = self._deadlocks.parked(st)
        if deadlock is not None:
            self._deadlock(now, deadlock)

    def closed(self, st: TaskState, now: int) -> None:
        self._self_wakes(st, now)
        reported = st.lints is not None and Lint.LOST_WAKER in st.lints
        if st.outcome == Outcome.LOST and self.options.lost_wakers and not reported:
            message = "destroyed while pending: nothing could wake it any more"
            self.report(st, now, Lint.LOST_WAKER, Severity.ERROR, message, {})
        if self._deadlocks is not None:
            self._deadlocks.woken(st)

    def sweep(self, now: int) -> None:
        """The ops open for long enough (on the tasks alive long enough)."""
        limit = self.options.long_wait_ns
        if limit is None:
            return
        for st in self._tracker.live():
            if now - st.start < limit:
                return  # oldest first: the rest are younger still
            for wait in (st.wait, *st.scopes):
                if wait is not None and wait.id and not wait.completed and now - wait.start >= limit:
                    self._long_wait(st, wait, now, limit)

    # -- the lints ---------------------------------------------------------------------

    def _long_poll(self, st: TaskState, task: Any, now: int, limit: int) -> None:
        """A poll that blocked the loop: where it resumed and where it gave
        the loop back (found only now: the walk is paid by long polls alone)."""
        duration = now - st.poll_ts
        started = st.resumed_at
        if st.first_poll:
            code = st.code
            if code is not None:
                name = getattr(code, "co_qualname", code.co_name)  # 3.11+
                started = Location(code.co_filename, code.co_firstlineno, name)
        attributes: dict[str, StateValue] = {"duration": duration / 1e9, "threshold": limit / 1e9}
        resumed = "started" if st.first_poll else "resumed"
        if started is not None:
            attributes["started_at"] = str(started)
            resumed += f" at {started}"
        elif not st.first_poll:
            resumed += " after a yield or an unrecorded wait"
        if task.done():
            ended = "returned"
        else:
            frame = innermost_user_frame(await_chain(task.get_coro()))
            yielded = location_of(frame) if frame is not None else None
            if yielded is not None:
                attributes["yielded_at"] = str(yielded)
            ended = f"yielded at {yielded}" if yielded is not None else "yielded"
        message = f"a poll of {duration / 1e6:.1f} ms blocked the event loop: {resumed}, {ended}"
        self.report(st, now, Lint.LONG_POLL, Severity.WARNING, message, attributes)

    def _self_wakes(self, st: TaskState, now: int) -> None:
        ratio = self.options.self_wake_ratio
        wakes = st.wakes
        if ratio is None or wakes < SELF_WAKE_MIN_WAKES or (st.lints and Lint.SELF_WAKES in st.lints):
            return
        share = st.self_wakes / wakes
        if share > ratio:
            message = (
                f"{st.self_wakes} of its {wakes} wakes ({share:.0%}) were its own: "
                "it yields to the loop rather than waiting for something"
            )
            attributes: dict[str, StateValue] = {
                "wakes": wakes,
                "self_wakes": st.self_wakes,
                "threshold": ratio,
            }
            self.report(st, now, Lint.SELF_WAKES, Severity.WARNING, message, attributes)

    def _long_wait(self, st: TaskState, wait: Wait, now: int, limit: int) -> None:
        """Report an op that has waited long enough, once."""
        resource = wait.resource
        kind = resource.family.kind if resource is not None else "Task"
        if kind in _NOT_WAITS or wait.lints:
            return
        wait.lints = True
        waited = now - wait.start
        concrete_type = resource.family.concrete_type if resource is not None else "a resource"
        where = f" at {wait.location}" if wait.location is not None else ""
        resource_id = resource.id if resource is not None else 0
        message = (
            f"waited {waited / 1e9:.1f} s so far in {wait.source} on {concrete_type} #{resource_id}{where}"
        )
        attributes: dict[str, StateValue] = {
            "duration": waited / 1e9,
            "threshold": limit / 1e9,
            "op_id": wait.id,
            "resource_id": resource_id,
            "source": wait.source,
        }
        if wait.location is not None:
            attributes["awaited_at"] = str(wait.location)
        self.report(st, now, Lint.LONG_WAIT, Severity.WARNING, message, attributes, named_by(wait))

    def _deadlock(self, now: int, deadlock: Deadlock) -> None:
        """A ``deadlock`` on every task of the cycle, naming the whole cycle."""
        cycle = deadlock.describe()
        ids = [t.task_id for t in deadlock.tasks]
        states = {st.id: st for st in self._tracker.live() if st.id in ids}
        for member in deadlock.tasks:
            st = states.get(member.task_id)
            if st is None:
                continue
            attributes: dict[str, LintValue] = {
                "cycle": cycle,
                "tasks": ids,
                "resource_id": member.resource_id,
                "source": member.source,
                "waits_for": member.waits_for,
            }
            named = named_by(st.wait) if st.wait is not None else ()
            self.report(st, now, Lint.DEADLOCK, Severity.ERROR, f"deadlocked: {cycle}", attributes, named)
        callback = self.options.on_deadlock
        if callback is not None:
            self._call_later(lambda: callback(deadlock))
