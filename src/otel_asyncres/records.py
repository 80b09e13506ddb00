"""The record model: what the instrumentation saw, in Tokio's vocabulary.

Records are the only thing that crosses from the event loop to the rest of the
package. Each one is a plain value taken at the moment something happened: it
names its owner explicitly by id (a task, a resource, an async op), carries its
own wall-clock timestamp (``time.time_ns()``, the clock OpenTelemetry uses) and
holds no reference to live asyncio objects, so a sink can process it later, on
another thread, without keeping tasks or futures alive.

Ids are small integers from per-kind counters, unique for the life of the
process, like Tokio's task and resource ids (Python's ``id()`` is reused as soon
as an object dies, so it cannot name anything across time).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

#: Attribute values a state update or a resource's initial state can hold.
StateValue = bool | int | float | str

next_task_id = itertools.count(1).__next__
next_resource_id = itertools.count(1).__next__
next_op_id = itertools.count(1).__next__


class Outcome:
    """How a task or an async op ended (string constants, cheap to compare)."""

    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    #: The task was garbage-collected while still pending ("Task was destroyed
    #: but it is pending!"), or an op whose task went away.
    LOST = "lost"
    #: The waiting task moved on without it (``wait`` returning on the first
    #: completed, a timeout or a cancellation of a ``gather``).
    ABANDONED = "abandoned"
    #: A timeout expired.
    TIMED_OUT = "timed_out"


class WakeCause:
    """Why a task was scheduled."""

    #: A future the task waited on completed; the wake consumes the registration.
    FUTURE = "future"
    #: The task scheduled its own next step (a bare ``yield``, ``sleep(0)``).
    YIELD = "yield"
    #: The task was cancelled while waiting: its registration was dropped and
    #: the cancellation woke it.
    CANCEL = "cancel"
    #: Something else scheduled a step (the first step of a task is not a wake).
    SCHEDULE = "schedule"


class StateOp:
    """How a state update combines with the previous value (Tokio's ``<attr>.op``)."""

    OVERRIDE = "override"
    ADD = "add"
    SUB = "sub"


@dataclass(slots=True, frozen=True)
class Location:
    """A place in user code (never in asyncio or in this package)."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.function})"


@dataclass(slots=True, frozen=True)
class ErrorInfo:
    """An exception, already formatted where it happened (tracebacks are not
    carried across threads: their frames would stay alive until exported)."""

    type: str
    message: str
    stacktrace: str


@dataclass(slots=True)
class TaskSpawned:
    ts: int
    task_id: int
    #: The task whose poll spawned this one, if any.
    parent_id: int | None
    coroutine: str
    location: Location | None
    #: The application's active span at spawn (an ``opentelemetry.trace.SpanContext``),
    #: the one place the current OpenTelemetry context is read.
    app_parent: object | None
    #: True when the task already existed when the instrumentation first saw it.
    adopted: bool = False
    #: True for asyncio's own housekeeping tasks (their coroutine is defined in
    #: asyncio: ``shutdown_asyncgens``, a server's ``_accept_connection2``).
    internal: bool = False
    #: "task", or "blocking" for work run in an executor (Tokio's kinds).
    kind: str = "task"


@dataclass(slots=True)
class TaskNamed:
    """The task's name, read lazily: some Python versions set it after spawn."""

    ts: int
    task_id: int
    name: str


@dataclass(slots=True)
class TaskWoken:
    ts: int
    task_id: int
    #: The task whose action caused the wake (None: the loop, a timer, a thread).
    waker_id: int | None
    cause: str
    resource_id: int | None = None
    op_id: int | None = None


@dataclass(slots=True)
class TaskPollStarted:
    ts: int
    task_id: int


@dataclass(slots=True)
class TaskPollEnded:
    ts: int
    task_id: int


@dataclass(slots=True)
class TaskClosed:
    ts: int
    task_id: int
    outcome: str
    error: ErrorInfo | None = None


@dataclass(slots=True)
class WakerCloned:
    """The task registered its wake-up on something it now waits for."""

    ts: int
    task_id: int
    resource_id: int | None = None
    op_id: int | None = None
    #: When the task waits on another task (a join): that task's id.
    awaited_task_id: int | None = None


@dataclass(slots=True)
class WakerDropped:
    """The task's registration ended without the awaited thing completing it."""

    ts: int
    task_id: int
    reason: str
    resource_id: int | None = None
    op_id: int | None = None


@dataclass(slots=True)
class ResourceCreated:
    ts: int
    resource_id: int
    concrete_type: str
    kind: str
    #: The task that created (or first used) the resource.
    task_id: int | None
    location: Location | None
    state: dict[str, StateValue] = field(default_factory=dict)
    parent_resource_id: int | None = None
    is_internal: bool = False
    adopted: bool = False
    #: Units of state attributes that have one (a sleep's ``duration``: ms).
    units: dict[str, str] = field(default_factory=dict)
    #: The resource whose holders hold this one too (a Condition's Lock:
    #: whoever holds the lock is the one that can notify).
    held_through: int | None = None


@dataclass(slots=True)
class ResourceStateUpdated:
    ts: int
    resource_id: int
    attribute: str
    value: StateValue
    op: str = StateOp.OVERRIDE
    unit: str | None = None


@dataclass(slots=True)
class ResourceHeld:
    """A task took the resource (a Lock, a Semaphore's permit): asyncio does
    not track holders; a task waiting for the resource waits for them."""

    ts: int
    resource_id: int
    task_id: int


@dataclass(slots=True)
class ResourceReleased:
    """A holder gave the resource back (one permit, for a Semaphore)."""

    ts: int
    resource_id: int
    task_id: int


@dataclass(slots=True)
class ResourceClosed:
    ts: int
    resource_id: int


@dataclass(slots=True)
class AsyncOpCreated:
    """An op begins: its task parked in it, so this is also the start of its
    first poll (no ``AsyncOpPollStarted`` is recorded for that one)."""

    ts: int
    op_id: int
    resource_id: int
    task_id: int | None
    source: str
    location: Location | None


@dataclass(slots=True)
class AsyncOpPollStarted:
    """The waiting task was resumed inside the operation (a second or later
    poll: the first starts with the op's creation)."""

    ts: int
    op_id: int
    task_id: int | None


@dataclass(slots=True)
class PollOp:
    """End of one poll of an operation: Tokio's ``runtime::resource::poll_op``."""

    ts: int
    op_id: int
    resource_id: int
    op_name: str
    is_ready: bool


@dataclass(slots=True)
class AsyncOpStateUpdated:
    ts: int
    op_id: int
    attribute: str
    value: StateValue
    op: str = StateOp.OVERRIDE
    unit: str | None = None


@dataclass(slots=True)
class AsyncOpClosed:
    ts: int
    op_id: int
    outcome: str
    error: ErrorInfo | None = None
    #: The task whose ending completed the op, for ops that were not parked on
    #: that task (a gather's children): the wake names the waiter's waker.
    waker_id: int | None = None


class Lint:
    """The kinds of diagnostic: the names of their span events."""

    #: A poll that blocked the event loop (asyncio's slow callback).
    LONG_POLL = "long_poll"
    #: A task that mostly wakes itself.
    SELF_WAKES = "self_wakes"
    #: A task that nothing can wake any more.
    LOST_WAKER = "lost_waker"
    #: An async op waiting for a long time.
    LONG_WAIT = "long_wait"
    #: Tasks each waiting for the next, in a cycle.
    DEADLOCK = "deadlock"

    ALL = (LONG_POLL, SELF_WAKES, LOST_WAKER, LONG_WAIT, DEADLOCK)


class Severity:
    """How bad a diagnostic is: an error marks its span's status."""

    WARNING = "warning"
    ERROR = "error"


@dataclass(slots=True)
class Diagnostic:
    """Something worth a warning, about one task (Tokio Console's lints, and
    more): seen by the instrumentation (a long poll, a lost waker) or
    inferred from the records (self-wakes, a long wait, a deadlock)."""

    ts: int
    #: One of ``Lint.ALL``.
    kind: str
    task_id: int
    severity: str
    message: str
    #: What the span event carries besides the message and severity.
    attributes: dict[str, StateValue] = field(default_factory=dict)


Record = (
    TaskSpawned
    | TaskNamed
    | TaskWoken
    | TaskPollStarted
    | TaskPollEnded
    | TaskClosed
    | WakerCloned
    | WakerDropped
    | ResourceCreated
    | ResourceStateUpdated
    | ResourceHeld
    | ResourceReleased
    | ResourceClosed
    | AsyncOpCreated
    | AsyncOpPollStarted
    | PollOp
    | AsyncOpStateUpdated
    | AsyncOpClosed
    | Diagnostic
)
