"""The record model: what the instrumentation knows, kept on the event loop.

Tokio's console-subscriber makes a statistics object when a task (resource,
async op) is created and updates it in place from then on; only creations
cross to its aggregator. This is the same idea: every task, resource and op is
an ``Entity`` made when it is created and updated in place by the hooks (polls,
wakes, state changes are plain numbers on it), and nothing is made per event
but what will be shown.

An entity's *fate* is decided on the loop, never elsewhere, so the decision
needs no lock: it is ``SHOWN`` (it becomes a span) when it ends and is worth
showing (``showing.Policy``), when a shown entity needs it (its parent, a task
a shown event names) or when it has lived long enough to be shown while it
lives; otherwise it ends ``FOLDED``: counted on its parent, nothing else kept.
Shown entities are handed, by reference, to the bridge (``handoff``), which
makes their spans on its own thread. Two kinds of field share the object, and
each field has one writer:

- the loop writes identity, statistics, events (appended only) and the fate;
- the bridge writes ``export`` (its span bookkeeping) and takes events from
  the front of ``events`` (a prefix it has copied: the loop only appends, so
  nothing is lost between the copy and the removal).

Ids are small integers from per-kind counters, unique for the life of the
process, like Tokio's task and resource ids (``id()`` is reused as soon as an
object dies, so it cannot name anything across time). Times are
``time.time_ns()``, OpenTelemetry's clock.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Any

#: Attribute values a state update, or a resource's state, can hold.
StateValue = bool | int | float | str

#: A table this many bytes per entry (and more than a few KB) is rebuilt.
_SPARSE_BYTES = 256


def compacted(table: dict[Any, Any]) -> dict[Any, Any]:
    """``table``, or a copy of it sized to what it holds. A dict never gives
    memory back as entries leave: after a burst of 10,000 tasks, the table of
    live ones would keep room for 10,000 (about 29 bytes per finished task).
    The copy replaces the table by one rebinding, which threads reading it
    see whole, old or new."""
    size = sys.getsizeof(table)
    if size > 4096 and size > _SPARSE_BYTES * len(table):
        return dict(table)
    return table


next_task_id = itertools.count(1).__next__
next_resource_id = itertools.count(1).__next__
next_op_id = itertools.count(1).__next__


class Fate:
    """What becomes of an entity (small ints: compared on every hook)."""

    UNDECIDED = 0
    SHOWN = 1
    FOLDED = 2


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
    #: Still running when the program ended.
    UNFINISHED = "unfinished"

    #: Endings that are always shown, whatever the budget: something failed.
    FAILED = frozenset({ERROR, LOST, TIMED_OUT})

    @staticmethod
    def of_exception(exc: BaseException | None) -> str:
        """How something that finished with ``exc`` ended, as a reader of the
        trace would say it: ``sys.exit(0)`` is a clean exit, not an error, and
        Ctrl-C interrupts (cancels) what was running rather than failing it."""
        if exc is None:
            return Outcome.OK
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            return Outcome.OK
        if isinstance(exc, KeyboardInterrupt):
            return Outcome.CANCELLED
        return Outcome.ERROR


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


class Event:
    """Kinds of the events an entity keeps, as the first item of a flat tuple.

    An event is a tuple of plain values and entities, never a dict: a tuple
    of plain values is one the cyclic garbage collector stops tracking. The
    layouts (after ``(kind, ts, ...)``):

    - ``CLONE``: resource, op, awaited task (each an entity or None);
    - ``WAKE``: cause, waker task, resource, op;
    - ``DROP``: reason, resource, op;
    - ``STATE``: attribute, value, op (a ``StateOp``), unit or None;
    - ``POLL_OP``: op name, is_ready;
    - ``LINT``: kind, severity, message, attributes as a flat tuple of pairs;
    - ``ERROR``: an ``ErrorInfo``.
    """

    CLONE = 1
    WAKE = 2
    DROP = 3
    STATE = 4
    POLL_OP = 5
    LINT = 6
    ERROR = 7

    #: Where, in each kind's tuple, entities that the event names are.
    REFERENCES: dict[int, tuple[int, ...]] = {CLONE: (2, 3, 4), WAKE: (3, 4, 5), DROP: (3, 4)}


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
    """An exception, formatted where it happened (a traceback carried to the
    bridge's thread would keep its frames alive until exported)."""

    type: str
    message: str
    stacktrace: str


class Entity:
    """What every task, resource and op has: identity, life, fate, events.

    Subclasses add their own statistics. ``export`` belongs to the bridge:
    None until the entity becomes a span."""

    __slots__ = ("ended", "events", "events_folded", "export", "fate", "id", "queued", "start", "unfinished")

    #: "task", "resource" or "op": the kind a drop or a fold is counted as.
    KIND = ""

    def __init__(self, entity_id: int, start: int) -> None:
        self.id = entity_id
        self.start = start
        #: When it ended (0 while it lives); and whether that was only the
        #: end of the program (its span is ended, marked unfinished).
        self.ended = 0
        self.unfinished = False
        self.fate = Fate.UNDECIDED
        #: Events kept for its span, oldest first; None until there is one.
        self.events: list[tuple[Any, ...]] | None = None
        #: Events not kept: past the window's room or the budget.
        self.events_folded = 0
        #: In the hand-off queue now (set by the loop, cleared by the bridge
        #: before it reads the entity, so a later change queues it again).
        self.queued = False
        self.export: Any = None

    def owner(self) -> Entity | None:
        """The entity whose span is the parent of this one's (None: the
        root of a trace, or an application span's child)."""
        return None

    def label(self) -> str:
        """How a reader names it: a task's name, a resource's type."""
        return ""

    def duration(self) -> int:
        """What decides whether it is worth a span: how long it lived (a
        task: how long it was active)."""
        return max(self.ended - self.start, 0)

    def pinnable(self) -> bool:
        """Whether a shown event that names it makes it shown too (tasks and
        resources; an op is named if shown, marked if folded)."""
        return True

    def linked(self) -> tuple[Entity, ...]:
        """Entities its span links to, which must be spans too (an op's
        resource)."""
        return ()

    def fold_target(self) -> Folded | None:
        """Where it is counted if it is folded: its owner's ``Folded`` (None:
        no live owner can carry it)."""
        return None

    def fold_into(self, folded: Folded) -> None:
        """Count it (and what was folded into it) in ``folded``."""


class Folded:
    """What was folded into an entity: its descendants and waits that got no
    span, with the aggregate statistics that stand for them.

    ``waits`` maps ``(resource type, op source)`` to ``[count, total ns,
    longest ns]``."""

    __slots__ = (
        "resources",
        "task_longest",
        "task_total",
        "tasks",
        "tasks_by_outcome",
        "waits",
    )

    def __init__(self) -> None:
        self.tasks = 0
        self.tasks_by_outcome: dict[str, int] = {}
        self.task_total = 0
        self.task_longest = 0
        self.waits: dict[tuple[str, str], list[int]] = {}
        self.resources: dict[str, int] = {}

    def add_task(self, outcome: str, duration: int) -> None:
        self.tasks += 1
        outcome = outcome or Outcome.UNFINISHED
        self.tasks_by_outcome[outcome] = self.tasks_by_outcome.get(outcome, 0) + 1
        self.task_total += duration
        if duration > self.task_longest:
            self.task_longest = duration

    def add_wait(self, key: tuple[str, str], duration: int) -> None:
        stats = self.waits.get(key)
        if stats is None:
            self.waits[key] = [1, duration, duration]
            return
        stats[0] += 1
        stats[1] += duration
        if duration > stats[2]:
            stats[2] = duration

    def add_resource(self, concrete_type: str) -> None:
        self.resources[concrete_type] = self.resources.get(concrete_type, 0) + 1

    def merge(self, other: Folded) -> None:
        """Take in what was folded into an entity folded itself."""
        self.tasks += other.tasks
        for outcome, n in other.tasks_by_outcome.items():
            self.tasks_by_outcome[outcome] = self.tasks_by_outcome.get(outcome, 0) + n
        self.task_total += other.task_total
        self.task_longest = max(self.task_longest, other.task_longest)
        for key, (count, total, longest) in other.waits.items():
            stats = self.waits.get(key)
            if stats is None:
                self.waits[key] = [count, total, longest]
            else:
                stats[0] += count
                stats[1] += total
                stats[2] = max(stats[2], longest)
        for concrete_type, n in other.resources.items():
            self.resources[concrete_type] = self.resources.get(concrete_type, 0) + n

    def wait_count(self) -> int:
        return sum(stats[0] for stats in self.waits.values())
