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

A ``Wait`` that belongs to an op is the op itself, an ``Entity`` with its
statistics; when it ends the policy shows it or folds it into its task
(counted by resource type and source, with the total and longest wait).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..model import Entity, Event, Fate, Folded, Location, Outcome, StateOp, StateValue, next_op_id
from .spawns import app_span_context, app_span_context_in

if TYPE_CHECKING:
    from ..bridge.metrics import RuntimeMetrics
    from ..showing import Policy
    from .resources import ResourceState
    from .task_state import TaskState


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


class Wait(Entity):
    """One registration of a task on something it waits for, and the async
    op it belongs to, if any (``id`` is 0 for a wait that is no op).

    It names the future by ``id()`` only: holding it would keep a pending,
    unreachable task alive (task -> future -> callback -> task), hiding
    asyncio's "Task was destroyed but it is pending!". The id is safe to compare
    because the future lives as long as the task is parked on it. For the same
    reason resources are held by weak reference, in ``objects``."""

    __slots__ = (
        "app_parent",
        "awaited",
        "completed",
        "concrete_type",
        "future_id",
        "handler",
        "held",
        "holders",
        "joins",
        "key",
        "lints",
        "location",
        "objects",
        "outcome",
        "parent",
        "poll_log",
        "polls",
        "resource",
        "resumed_at",
        "source",
        "state",
        "task",
        "touched_at",
        "waker",
        "wakers",
    )

    KIND = "op"

    def __init__(
        self,
        future: Any,
        handler: WaitHandler | None = None,
        op_id: int = 0,
        start: int = 0,
        task: TaskState | None = None,
        resource: ResourceState | None = None,
        source: str = "",
    ) -> None:
        super().__init__(op_id, start)
        self.future_id = id(future)
        self.handler = handler
        self.task = task
        self.resource = resource
        self.source = source
        #: The type of what it waits on, even when that is no span of its
        #: own (a joined task): folded waits are counted by it.
        self.concrete_type = resource.family.concrete_type if resource is not None else ""
        #: The span's parent: the task (default) or the resource.
        self.parent: Entity | None = task
        #: The application's span (a SpanContext) current when the op began,
        #: when it belongs to another trace than the task's: a handler task
        #: made before its request's span began waits in the request's trace.
        self.app_parent: Any = None
        #: For a wait on another task (a join): that task.
        self.awaited: TaskState | None = None
        #: The tasks holding what it waits for when it began (a Lock's
        #: owner, a Semaphore's permit holders).
        self.holders: tuple[TaskState, ...] = ()
        #: A wait on other tasks only (a join, gather, wait): waiting for
        #: children does not make a task worth a span.
        self.joins = False
        #: Identifies the op across parks: a weak reference to the op's
        #: coroutine (an id could be a finished op's, reused by the next).
        self.key: Any = None
        #: The ``await`` in user code, when known (where a poll resumes).
        self.location: Location | None = None
        #: Weak references to the resources the op involves, for observation.
        self.objects: tuple[Any, ...] = ()
        #: The same resources, held for the one poll the op resumes in, so
        #: that they are still there to be read when that poll ends.
        self.held: tuple[Any, ...] = ()
        self.resumed_at = 0
        self.touched_at = 0
        #: How the op ended or will end, once known; whether it has.
        self.outcome: str | None = None
        #: A diagnostic was reported about it (a long wait).
        self.lints = False
        self.completed = False
        #: Its creation is the start of its first poll.
        self.polls = 1
        #: (start, end, is_ready) of each poll, kept only when every poll is
        #: a span (detail=all, op_poll_spans).
        self.poll_log: list[tuple[int, int, bool]] | None = None
        #: The op's own state (``async_op::state_update``), when it has one.
        self.state: dict[str, StateValue] | None = None
        #: For a scope op: the task that caused the last wake inside it.
        self.waker: TaskState | None = None
        #: Tasks whose action woke it, oldest first (links).
        self.wakers: list[TaskState] | None = None

    # -- as an entity ---------------------------------------------------------------------

    def owner(self) -> Entity | None:
        parent = self.parent
        if parent is not None and parent.KIND == "op" and parent.fate == Fate.FOLDED:
            parent = self.task  # the op it was made in has no span: under the task instead
        if parent is None or parent.KIND != "task":
            return parent
        return parent if not parent.internal else parent.owner()  # type: ignore[attr-defined]

    def label(self) -> str:
        return self.source

    def pinnable(self) -> bool:
        return False

    def linked(self) -> tuple[Entity, ...]:
        """The resource (or, by resource, the task) and the awaited task."""
        linked: list[Entity] = []
        other = self.task if self.parent is self.resource else self.resource
        if other is not None and other.pinnable():
            linked.append(other)
        if self.awaited is not None:
            linked.append(self.awaited)
        linked.extend(self.holders)
        return tuple(linked)

    def fold_target(self) -> Folded | None:
        task = self.task
        if task is None or task.ended:
            return None
        return task.folded_here()

    def fold_into(self, folded: Folded) -> None:
        folded.add_wait((self.concrete_type, self.source), self.duration())

    def woken_by(self, waker: TaskState) -> None:
        """Note the task whose action woke the op, unless it is the op's own:
        a gather of tasks already done completes by callbacks its own task
        scheduled, and a link from a span to its parent's span makes Jaeger
        drop the parent reference (the op shows as a root there)."""
        if waker is self.task:
            return
        if self.wakers is None:
            self.wakers = [waker]
        elif self.wakers[-1] is not waker:
            self.wakers.append(waker)


class Ops:
    """Opens, polls and ends async ops; the one place that knows their order."""

    def __init__(self, policy: Policy, by_resource: bool = False, poll_log: bool = False) -> None:
        self.policy = policy
        #: Runtime metrics, when some consumer wants them.
        self.metrics: RuntimeMetrics | None = None
        #: op_parent=resource: an op's span is a child of its resource's.
        self.by_resource = by_resource
        #: Every poll is a span (detail=all, op_poll_spans).
        self.poll_log = poll_log

    def open(
        self,
        st: TaskState | None,
        future: Any,
        resource: ResourceState | None,
        source: str,
        location: Location | None,
        handler: WaitHandler,
        now: int,
        key: Any = None,
    ) -> Wait:
        """A new op: created, its first poll started."""
        wait = Wait(future, handler, next_op_id(), now, st, resource, source)
        wait.location = location
        wait.key = key
        if st is not None:
            app = app_span_context() or app_span_context_in(st.context)
            if app is not None:
                mine = trace_app(st)
                if mine is None or mine.trace_id != app.trace_id:
                    wait.app_parent = app
        if self.by_resource and resource is not None and resource.pinnable():
            wait.parent = resource
        elif st is not None and st.scopes:
            # Made inside another op of the same task (a custom resource's op,
            # a timeout): its child, not its sibling.
            wait.parent = st.scopes[-1]
        if self.poll_log:
            wait.poll_log = []
        if resource is not None:
            resource.ops += 1
            held = resource.held_through or resource
            if held.holders:
                wait.holders = tuple(h for h in held.holders if h is not st and not h.ended)
        return wait

    def continued(self, wait: Wait, future: Any) -> Wait:
        """The same op parks again, on a new future."""
        wait.future_id = id(future)
        return wait

    def poll_started(self, wait: Wait, st: TaskState, now: int) -> None:
        wait.polls += 1
        wait.resumed_at = now
        wait.touched_at = 0
        wait.held = tuple(ref() for ref in wait.objects)

    def state(self, wait: Wait, attribute: str, value: StateValue, now: int) -> None:
        """The op's own state changed (``async_op::state_update``)."""
        if not wait.id:
            return
        if wait.state is None:
            wait.state = {}
        wait.state[attribute] = value
        self.policy.event(wait, (Event.STATE, now, attribute, value, StateOp.OVERRIDE, None))

    def completed(
        self, wait: Wait, now: int, outcome: str, waker: TaskState | None = None, joined_folded: bool = False
    ) -> None:
        """The op's last poll was ready; the op is over. ``joined_folded``: it
        waited for tasks, none of which is a span (a gather of trivial ones)."""
        wait.completed = True
        if not wait.id:
            return
        if waker is not None:
            wait.woken_by(waker)
        if wait.poll_log is not None:
            wait.poll_log.append((wait.resumed_at or wait.start, now, True))
            self.policy.event(wait, (Event.POLL_OP, now, wait.source, True))
        self._end(wait, now, outcome, joined_folded)

    def abandoned(self, wait: Wait, now: int, outcome: str = Outcome.LOST) -> None:
        wait.completed = True
        if wait.id:
            self._end(wait, now, outcome)

    def _end(self, wait: Wait, now: int, outcome: str, joined_folded: bool = False) -> None:
        wait.outcome = outcome
        wait.ended = now
        resource = wait.resource
        duration = wait.duration()
        if resource is not None:
            resource.op_ended(duration)
        if self.metrics is not None:
            self.metrics.op_ended(wait.concrete_type, wait.source, outcome or "unfinished", duration)
        awaited = wait.awaited
        if outcome == Outcome.OK and (joined_folded or (awaited is not None and awaited.fate == Fate.FOLDED)):
            # Waiting for tasks not worth a span is their scheduling: counted.
            self.policy.fold(wait)
            return
        must = outcome in Outcome.FAILED or wait.fate == Fate.SHOWN
        # The floor is for waits that ended well: a cancelled one is worth a look.
        self.policy.ended(wait, must, self.policy.min_wait_ns if outcome == Outcome.OK else 0)

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


def trace_app(st: TaskState) -> Any:
    """The application span whose trace the task is in (the nearest
    ancestor, or itself, spawned inside an application span that was not its
    spawner's; the bridge parents it there), or None: a trace of its own."""
    node: TaskState | None = st
    while node is not None:
        app, owner = node.app_parent, node.parent
        if app is not None and (owner is None or app != owner.app_parent):
            return app
        node = owner
    return None


def future_outcome(future: Any) -> str:
    """The outcome of an op that waited on ``future``, without retrieving it."""
    if future is None:
        return Outcome.LOST
    if future.cancelled():
        return Outcome.CANCELLED
    return Outcome.of_exception(future._exception)
