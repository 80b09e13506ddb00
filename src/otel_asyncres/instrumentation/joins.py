"""Joins: one task waiting for others, which Tokio's join handles never showed.

Each wait for a task is an async op ``Task.__await__`` on that task: directly
(``await task``), or through ``gather`` and ``wait``, where the waiting task
parks on a future of asyncio's, an op of its own (``gather``, ``wait``) under
which it waits for each task still running. A task
awaited by others is its own span already, so it is no ``resource`` span of its
own: the op carries ``asyncio.awaited_task.id`` and links to the task's span.
``TaskGroup`` (3.11+) is a resource of its own (``active``, ``errors``) whose
``__aexit__`` is the op that waits for the group. The task whose ending woke
the waiter is the waker: gather's and the group's done-callbacks run on its
behalf.

A gather over thousands of tasks is the common case (the async tree
benchmarks), so nothing is made per gathered task while it runs: the task's
state notes the group wait that waits for it (``joined_by``), and the op is
made when it ends, or when the waiting task gives up on it, and is decided at
once (shown if the task is, folded otherwise).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..model import Fate, Outcome, StateValue
from .frames import await_chain, innermost_user_frame, location_of
from .operations import OperationWaits, OpSpec
from .patching import Patcher
from .resources import Family, ResourceRegistry
from .spawns import TASK_TYPES
from .task_state import MUTED, TaskState
from .tasks import TaskTracker
from .waits import Ops, Wait, future_outcome

SOURCE = "Task.__await__"
#: The type a join's op is counted under when it is folded.
JOINED_TYPE = "asyncio.Task"
_GATHERING_FUTURE: Any = getattr(asyncio.tasks, "_GatheringFuture", None)
_WAIT_CODE = asyncio.tasks._wait.__code__  # type: ignore[attr-defined]


def task_outcome(task: Any) -> str:
    """How a task ended, read without retrieving its exception."""
    if not task.done():
        return "pending"
    if task.cancelled():
        return Outcome.CANCELLED
    return Outcome.of_exception(task._exception)


class Joins:
    """Classifies waits on tasks and ends them when the tasks end."""

    def __init__(self, registry: ResourceRegistry, ops: Ops, tracker: TaskTracker) -> None:
        self.registry = registry
        self.ops = ops
        self.tracker = tracker
        self._direct = _DirectJoin(ops)

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
        awaited_state = self.tracker.state_of(awaited)
        if awaited_state is MUTED:
            return None
        wait = self.ops.open(st, awaited, None, SOURCE, self._where(task), self._direct, now)
        wait.concrete_type = JOINED_TYPE
        wait.awaited = awaited_state
        wait.joins = True
        return wait

    def _group_wait(
        self, st: TaskState, task: Any, fut: Any, awaited: Any, now: int, frames: list[Any] | None = None
    ) -> Wait:
        """A wait for several tasks at once, an op (``gather``, ``wait``) that
        the task's waker events name: each task still running notes it."""
        children: list[TaskState] = []
        source = "gather" if type(fut) is _GATHERING_FUTURE else "wait"
        where = self._where(task, frames)
        handler = _GroupWait(self, children)
        wait = self.ops.open(st, fut, None, source, where, handler, now)
        wait.concrete_type = JOINED_TYPE
        wait.joins = True
        for child in awaited:
            if not isinstance(child, TASK_TYPES) or child.done():  # type: ignore[attr-defined]
                continue
            child_state = self.tracker.state_of(child)
            if child_state is None or child_state is MUTED:
                continue
            joined = child_state.joined_by
            if joined is None:
                child_state.joined_by = wait
            elif isinstance(joined, list):
                joined.append(wait)
            else:
                child_state.joined_by = [joined, wait]
            children.append(child_state)
        handler.joined = bool(children)
        return wait

    @staticmethod
    def _where(task: Any, frames: list[Any] | None = None) -> Any:
        frame = innermost_user_frame(frames if frames is not None else await_chain(task.get_coro()))
        return location_of(frame) if frame is not None else None

    # -- endings -----------------------------------------------------------------

    def task_closed(self, st: TaskState, task: Any, now: int) -> None:
        """A task ended: so do the joins that waited for it from a distance."""
        joined, st.joined_by = st.joined_by, None
        if joined is None:
            return
        for group in joined if isinstance(joined, list) else (joined,):
            if not group.completed:
                self.join_ended(group, st, now, st.outcome)

    def join_ended(self, group: Wait, child: TaskState, now: int, outcome: str) -> None:
        """The join of ``group``'s task on ``child`` is over: made an op now,
        and decided at once."""
        op = self.ops.open(group.task, None, None, SOURCE, group.location, self._direct, group.start)
        op.parent, op.app_parent = group, None  # under the gather, which has the application's span
        op.concrete_type = JOINED_TYPE
        op.awaited = child
        op.joins = True
        waker = child if outcome != Outcome.ABANDONED else None
        self.ops.completed(op, now, outcome, waker=waker)
        if op.fate != Fate.FOLDED:
            group.handler.kept = True  # type: ignore[union-attr]

    @staticmethod
    def forget(group: Wait, child: TaskState) -> None:
        joined = child.joined_by
        if joined is group:
            child.joined_by = None
        elif isinstance(joined, list) and group in joined:
            joined.remove(group)


class _DirectJoin:
    """``await task``: over as soon as the waiting task runs again."""

    __slots__ = ("ops",)

    def __init__(self, ops: Ops) -> None:
        self.ops = ops

    def woken(self, wait: Wait, future: Any, st: TaskState, waker: TaskState | None, now: int) -> None:
        pass

    def resumed(self, wait: Wait, future: Any, st: TaskState, now: int) -> bool:
        self.ops.poll_started(wait, st, now)
        self.ops.completed(wait, now, task_outcome(future) if future is not None else Outcome.LOST)
        return True

    def finished(self, wait: Wait, st: TaskState, now: int) -> None:
        pass

    def abandoned(self, wait: Wait, st: TaskState, now: int) -> None:
        self.ops.abandoned(wait, now)


class _GroupWait:
    """A park on gather's or wait's future: its joins end with their tasks;
    whatever is still waiting when the task resumes was given up on (the first
    completed, a timeout, a cancellation)."""

    __slots__ = ("children", "joined", "joins", "kept")

    def __init__(self, joins: Joins, children: list[TaskState]) -> None:
        self.joins = joins
        self.children = children
        #: It waits for recorded tasks (not only for futures); one of its
        #: joins was kept (its task is worth a span). A gather of tasks none
        #: of which was kept, that went well, is folded with them.
        self.joined = False
        self.kept = False

    def woken(self, wait: Wait, future: Any, st: TaskState, waker: TaskState | None, now: int) -> None:
        pass

    def resumed(self, wait: Wait, future: Any, st: TaskState, now: int) -> bool:
        """The gather is over as its task runs again: as its future ended
        (the first error, a cancellation), or given up on."""
        self._give_up(wait, now, Outcome.ABANDONED)
        ops = self.joins.ops
        ops.poll_started(wait, st, now)
        outcome = future_outcome(future) if future is not None and future.done() else Outcome.ABANDONED
        ops.completed(wait, now, outcome, joined_folded=self.joined and not self.kept)
        return True

    def finished(self, wait: Wait, st: TaskState, now: int) -> None:
        pass

    def abandoned(self, wait: Wait, st: TaskState, now: int) -> None:
        self._give_up(wait, now, Outcome.LOST)
        self.joins.ops.abandoned(wait, now)

    def _give_up(self, wait: Wait, now: int, outcome: str) -> None:
        """The joins still waiting end with ``outcome``."""
        wait.completed = True
        children, self.children = self.children, []  # each child points back here: let go
        for child in children:
            if child.ended:
                continue
            self.joins.forget(wait, child)
            self.joins.join_ended(wait, child, now, outcome)


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
    observe, known = registry.observe, registry.get

    def _on_task_done(self: Any, task: Any) -> None:
        try:
            original(self, task)
        finally:
            if registry.active and known(self) is not None:
                try:
                    observe(self)
                except Exception as exc:
                    registry.count_error("TaskGroup state", exc)

    patcher.replace(_TASK_GROUP, "_on_task_done", _on_task_done)
    spec = OpSpec("TaskGroup.__aexit__", TASK_GROUP, _task_group_done, outcome=_task_group_outcome)
    waits.add(_TASK_GROUP.__aexit__, spec)
