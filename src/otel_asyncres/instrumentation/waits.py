"""Waits: a task parked on something, and the async operation it belongs to.

A task parks on exactly one future at a time (``task._fut_waiter``). What that
future stands for (a one-shot, a lock's waiter, a sleep's timer, another task)
is decided by classifiers when the poll that parked ends. The async operation
(Tokio's ``runtime.resource.async_op``) spans from the park that began it to
its completion, across as many polls as it takes:

- the task parks: the op is created (or continued, when the same call parks
  again, as ``Queue.get`` does when another getter was faster) and its poll
  ends pending;
- the task resumes inside the op: a new poll of the op starts; if the op
  completes right away (``ready_on_resume``) it ends there, ready;
- otherwise the poll runs on: either the task parks again in the same op, or
  the op finished during the poll, and it ends at the last moment the task
  touched the op's resources (or its resumption).
"""

from __future__ import annotations

from time import time_ns
from typing import TYPE_CHECKING, Any, Protocol

from ..recorder import Recorder
from ..records import (
    AsyncOpClosed,
    AsyncOpCreated,
    AsyncOpPollStarted,
    AsyncOpStateUpdated,
    Location,
    Outcome,
    PollOp,
    StateValue,
    next_op_id,
)

if TYPE_CHECKING:
    from .tasks import TaskState


class WaitHandler(Protocol):
    """Resource-specific behaviour of a wait."""

    def woken(self, wait: Wait, future: Any, st: TaskState, waker: TaskState | None, now: int) -> None:
        """The awaited ``future`` completed and scheduled the waiting task."""

    def resumed(self, wait: Wait, future: Any, st: TaskState, now: int) -> bool:
        """The task runs again inside the op (``future`` is None when it was
        not resumed by that future). True when the op completed right there."""

    def finished(self, wait: Wait, st: TaskState, now: int) -> None:
        """A resumed op ended during the poll without parking again."""

    def abandoned(self, wait: Wait, st: TaskState, now: int) -> None:
        """The wait will never complete (never started, or its task is gone)."""


class Wait:
    """One registration of a task on something it waits for.

    It names the future by ``id()`` only: holding it would keep a pending,
    unreachable task alive (task -> future -> callback -> task), hiding
    asyncio's "Task was destroyed but it is pending!". The id is safe to compare
    because the future lives as long as the task is parked on it. For the same
    reason resources are held by weak reference, in ``objects``."""

    __slots__ = (
        "awaited_task_id",
        "completed",
        "future_id",
        "handler",
        "held",
        "key",
        "location",
        "objects",
        "op_id",
        "op_name",
        "outcome",
        "resource_id",
        "resumed_at",
        "touched_at",
        "waker_id",
    )

    def __init__(
        self,
        future: Any,
        resource_id: int | None = None,
        op_id: int | None = None,
        op_name: str = "",
        awaited_task_id: int | None = None,
        handler: WaitHandler | None = None,
        key: int = 0,
    ) -> None:
        self.future_id = id(future)
        self.resource_id = resource_id
        self.op_id = op_id
        self.op_name = op_name
        self.awaited_task_id = awaited_task_id
        self.handler = handler
        #: Identifies the op across parks: the id of the op's coroutine frame.
        self.key = key
        #: The ``await`` in user code, when known (where a poll resumes).
        self.location: Location | None = None
        #: Weak references to the resources the op involves, for observation.
        self.objects: tuple[Any, ...] = ()
        #: The same resources, held for the one poll the op resumes in, so
        #: that they are still there to be read when that poll ends.
        self.held: tuple[Any, ...] = ()
        self.resumed_at = 0
        self.touched_at = 0
        #: How the op ended or will end, once known; whether it was recorded.
        self.outcome: str | None = None
        self.completed = False
        #: For a scope op: the task that caused the last wake inside it.
        self.waker_id: int | None = None


class OpRecords:
    """Emits the records of async ops; the one place that knows their order."""

    def __init__(self, recorder: Recorder) -> None:
        self._emit = recorder.emit

    def open(
        self,
        st: TaskState | None,
        future: Any,
        resource_id: int,
        source: str,
        location: Location | None,
        handler: WaitHandler,
        now: int | None = None,
        key: int = 0,
    ) -> Wait:
        """A new op: created, its first poll started (one record says both)."""
        ts = time_ns() if now is None else now
        op_id = next_op_id()
        task_id = st.id if st is not None else None
        self._emit(AsyncOpCreated(ts, op_id, resource_id, task_id, source, location))
        wait = Wait(future, resource_id, op_id, source, handler=handler, key=key)
        wait.location = location
        return wait

    def parked(self, wait: Wait, now: int) -> None:
        """The poll that opened the op left it pending: for ops a task waits
        on from a distance (gather's, wait's); a task parked on the op itself
        says so when it parks."""
        if wait.op_id is not None and wait.resource_id is not None:
            self._emit(PollOp(now, wait.op_id, wait.resource_id, wait.op_name, False))

    def continued(self, wait: Wait, future: Any) -> Wait:
        """The same op parks again, on a new future."""
        wait.future_id = id(future)
        return wait

    def poll_started(self, wait: Wait, st: TaskState, now: int) -> None:
        if wait.op_id is not None:
            self._emit(AsyncOpPollStarted(now, wait.op_id, st.id))
        wait.resumed_at = now
        wait.touched_at = 0
        wait.held = tuple(ref() for ref in wait.objects)

    def state(self, wait: Wait, attribute: str, value: StateValue, now: int | None = None) -> None:
        if wait.op_id is not None:
            self._emit(AsyncOpStateUpdated(time_ns() if now is None else now, wait.op_id, attribute, value))

    def completed(self, wait: Wait, now: int, outcome: str, waker_id: int | None = None) -> None:
        """The op's last poll was ready; the op is over."""
        wait.completed = True
        if wait.op_id is None or wait.resource_id is None:
            return
        self._emit(PollOp(now, wait.op_id, wait.resource_id, wait.op_name, True))
        self._emit(AsyncOpClosed(now, wait.op_id, outcome, waker_id=waker_id))

    def abandoned(self, wait: Wait, now: int, outcome: str = Outcome.LOST) -> None:
        if wait.op_id is not None:
            self._emit(AsyncOpClosed(now, wait.op_id, outcome))

    def finish_time(self, wait: Wait, now: int) -> int:
        """When an op that did not park again ended: the last time its task
        touched its resources during the poll, else its resumption."""
        return wait.touched_at or wait.resumed_at or now


class ScopeHandler:
    """The handler of an op that is a scope rather than a wait (a timeout's
    ``async with``, a custom resource's op): it never parks itself; the waits
    inside it are ops of their own."""

    def woken(self, wait: Wait, future: Any, st: TaskState, waker: TaskState | None, now: int) -> None:
        pass

    def resumed(self, wait: Wait, future: Any, st: TaskState, now: int) -> bool:
        return True

    def finished(self, wait: Wait, st: TaskState, now: int) -> None:
        pass

    def abandoned(self, wait: Wait, st: TaskState, now: int) -> None:
        pass


def future_outcome(future: Any) -> str:
    """The outcome of an op that waited on ``future``, without retrieving it."""
    if future is None:
        return Outcome.LOST
    if future.cancelled():
        return Outcome.CANCELLED
    return Outcome.OK if future._exception is None else Outcome.ERROR
