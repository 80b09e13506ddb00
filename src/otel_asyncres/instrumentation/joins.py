"""Joins: one task waiting for others, which Tokio's join handles never showed.

A task awaited by another becomes a resource (``resource asyncio.Task``, kind
Task, state ``done`` and ``outcome``), a child of that task's own span, and each
wait for it is an async op ``Task.__await__``: directly (``await task``), or
through ``gather`` and ``wait``, where the waiting task parks on a future of
asyncio's and each awaited task gets an op that ends when that task does.
``TaskGroup`` (3.11+) is a resource of its own (``active``, ``errors``) whose
``__aexit__`` is the op that waits for the group. The task whose ending woke the
waiter is the waker: gather's and the group's done-callbacks run on its behalf.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..records import Outcome, StateValue
from .frames import await_chain, innermost_user_frame, location_of
from .operations import OperationWaits, OpSpec
from .patching import Patcher
from .resources import Family, ResourceRegistry, ResourceState
from .tasks import TASK_TYPES, TaskState, TaskTracker
from .waits import OpRecords, Wait

SOURCE = "Task.__await__"
_GATHERING_FUTURE: Any = getattr(asyncio.tasks, "_GatheringFuture", None)
_WAIT_CODE = asyncio.tasks._wait.__code__  # type: ignore[attr-defined]


def task_outcome(task: Any) -> str:
    """How a task ended, read without retrieving its exception."""
    if not task.done():
        return "pending"
    if task.cancelled():
        return Outcome.CANCELLED
    return Outcome.OK if task._exception is None else Outcome.ERROR


def _task_state(task: Any) -> dict[str, StateValue]:
    return {"done": task.done(), "outcome": task_outcome(task)}


TASK = Family(None, "asyncio.Task", "Task", _task_state)


class Joins:
    """Classifies waits on tasks and ends them when the tasks end."""

    def __init__(self, registry: ResourceRegistry, ops: OpRecords, tracker: TaskTracker) -> None:
        self.registry = registry
        self.ops = ops
        self.tracker = tracker
        #: Ops waiting for a task without being parked on it (gather, wait),
        #: by the awaited task's id; they end when that task ends. Almost
        #: always one per task: kept bare, a list only from the second on
        #: (a list per gathered task is one more object per live task for the
        #: cyclic garbage collector).
        self._indirect: dict[int, Wait | list[Wait]] = {}
        self._direct = _DirectJoin(self)

    def install(self, patcher: Patcher, waits: OperationWaits) -> None:
        self.tracker.add_classifier(self.classify)
        self.tracker.close_listeners.append(self.task_closed)
        _install_task_group(self.registry, waits, patcher)

    # -- classification ---------------------------------------------------------

    def classify(self, st: TaskState, task: Any, fut: Any, now: int, resumed: Wait | None) -> Wait | None:
        if isinstance(fut, TASK_TYPES):
            return self._join(st, task, fut, now)
        if _GATHERING_FUTURE is not None and type(fut) is _GATHERING_FUTURE:
            return self._group_wait(st, task, fut, fut._children, now)
        frames = await_chain(task.get_coro())
        for frame in frames:
            if frame.f_code is _WAIT_CODE:
                return self._group_wait(st, task, fut, frame.f_locals.get("fs") or (), now, frames)
        return None

    def _join(self, st: TaskState, task: Any, awaited: Any, now: int) -> Wait | None:
        rs = self._resource(awaited)
        if rs is None:
            return None
        wait = self.ops.open(st, awaited, rs.id, SOURCE, self._where(task), self._direct, now)
        awaited_state = self.tracker.state_of(awaited)
        wait.awaited_task_id = awaited_state.id if awaited_state is not None else None
        return wait

    def _group_wait(
        self, st: TaskState, task: Any, fut: Any, awaited: Any, now: int, frames: list[Any] | None = None
    ) -> Wait:
        """A wait for several tasks at once: one op per task still running."""
        where = self._where(task, frames)
        handler = _GroupWait(self)
        for child in awaited:
            if not isinstance(child, TASK_TYPES) or child.done():  # type: ignore[attr-defined]
                continue
            child_state = self.tracker.state_of(child)
            rs = self._resource(child)
            if child_state is None or rs is None:
                continue
            op = self.ops.open(st, fut, rs.id, SOURCE, where, handler, now)
            self.ops.parked(op, now)
            op.awaited_task_id = child_state.id
            handler.ops.append(op)
            self._wait_for(child_state.id, op)
        return Wait(fut, handler=handler)

    def _resource(self, awaited: Any) -> ResourceState | None:
        """The awaited task as a resource, a child of its own task span."""
        awaited_state = self.tracker.state_of(awaited)
        if awaited_state is None:
            return self.registry.ensure(awaited, TASK, adopted=False)
        if awaited_state.muted:
            return None
        return self.registry.ensure(
            awaited, TASK, awaited_state.location, adopted=False, task_id=awaited_state.id
        )

    @staticmethod
    def _where(task: Any, frames: list[Any] | None = None) -> Any:
        frame = innermost_user_frame(frames if frames is not None else await_chain(task.get_coro()))
        return location_of(frame) if frame is not None else None

    # -- endings -----------------------------------------------------------------

    def task_closed(self, st: TaskState, task: Any, now: int, outcome: str) -> None:
        """A task ended: its resource says so and ends; so do the ops that
        waited for it from a distance."""
        if self.registry.get(task) is not None:
            self.registry.observe(task)
            self.registry.close(task)
        waiting = self._indirect.pop(st.id, ())
        for op in waiting if isinstance(waiting, (list, tuple)) else (waiting,):
            if not op.completed:
                self.ops.completed(op, now, outcome, waker_id=st.id)

    def _wait_for(self, task_id: int, op: Wait) -> None:
        waiting = self._indirect.get(task_id)
        if waiting is None:
            self._indirect[task_id] = op
        elif isinstance(waiting, list):
            waiting.append(op)
        else:
            self._indirect[task_id] = [waiting, op]

    def forget(self, op: Wait) -> None:
        key = op.awaited_task_id or 0
        waiting = self._indirect.get(key)
        if waiting is op:
            del self._indirect[key]
        elif isinstance(waiting, list) and op in waiting:
            waiting.remove(op)


class _DirectJoin:
    """``await task``: over as soon as the waiting task runs again."""

    __slots__ = ("joins",)

    def __init__(self, joins: Joins) -> None:
        self.joins = joins

    def woken(self, wait: Wait, future: Any, st: TaskState, waker: TaskState | None, now: int) -> None:
        pass

    def resumed(self, wait: Wait, future: Any, st: TaskState, now: int) -> bool:
        self.joins.ops.poll_started(wait, st, now)
        self.joins.ops.completed(wait, now, task_outcome(future) if future is not None else Outcome.LOST)
        return True

    def finished(self, wait: Wait, st: TaskState, now: int) -> None:
        pass

    def abandoned(self, wait: Wait, st: TaskState, now: int) -> None:
        self.joins.ops.abandoned(wait, now)


class _GroupWait:
    """A park on gather's or wait's future: its ops end with their tasks;
    whatever is still waiting when the task resumes was given up on (the first
    completed, a timeout, a cancellation)."""

    __slots__ = ("joins", "ops")

    def __init__(self, joins: Joins) -> None:
        self.joins = joins
        self.ops: list[Wait] = []

    def woken(self, wait: Wait, future: Any, st: TaskState, waker: TaskState | None, now: int) -> None:
        pass

    def resumed(self, wait: Wait, future: Any, st: TaskState, now: int) -> bool:
        self._end(now, Outcome.ABANDONED)
        return True

    def finished(self, wait: Wait, st: TaskState, now: int) -> None:
        pass

    def abandoned(self, wait: Wait, st: TaskState, now: int) -> None:
        self._end(now, Outcome.LOST)

    def _end(self, now: int, outcome: str) -> None:
        ops, self.ops = self.ops, []  # each op points back here: the cycle goes with the wait
        for op in ops:
            if not op.completed:
                self.joins.forget(op)
                self.joins.ops.completed(op, now, outcome)


# -- TaskGroup (3.11+) -------------------------------------------------------------------

_TASK_GROUP: Any = getattr(asyncio, "TaskGroup", None)


def _task_group_state(group: Any) -> dict[str, StateValue]:
    """``_errors`` is dropped once the group has exited (to break reference
    cycles): the count stays at its last value."""
    state: dict[str, StateValue] = {"active": len(group._tasks)}
    if group._errors is not None:
        state["errors"] = len(group._errors)
    return state


def _task_group_done(group: Any, future: Any) -> bool:
    return not group._tasks


def _task_group_outcome(group: Any) -> str | None:
    return Outcome.ERROR if group._errors else None


TASK_GROUP = (
    Family(_TASK_GROUP, "asyncio.TaskGroup", "Task", _task_group_state, watched={"_tasks"}, deltas={"active"})
    if _TASK_GROUP is not None
    else None
)


def _install_task_group(registry: ResourceRegistry, waits: OperationWaits, patcher: Patcher) -> None:
    """A group's state changes as children end (``_on_task_done``, which
    cannot raise) and is read again whenever its ``__aexit__`` parks."""
    if TASK_GROUP is None:
        return
    registry.add_family(TASK_GROUP)
    registry.hook_class(_TASK_GROUP, patcher)
    original = _TASK_GROUP._on_task_done
    observe = registry.observe

    def _on_task_done(self: Any, task: Any) -> None:
        try:
            original(self, task)
        finally:
            if registry.active:
                try:
                    observe(self)
                except Exception as exc:
                    registry.recorder.count_error("TaskGroup state", exc)

    patcher.replace(_TASK_GROUP, "_on_task_done", _on_task_done)
    spec = OpSpec("TaskGroup.__aexit__", TASK_GROUP, _task_group_done, outcome=_task_group_outcome)
    waits.add(_TASK_GROUP.__aexit__, spec)
