"""What the instrumentation keeps per live task: one object, updated in place.

A ``TaskState`` is made when the task is spawned and holds everything about
it: who spawned it and where, Tokio Console's statistics (polls, busy,
scheduled and idle time, wakes, self-wakes, waker clones and drops), updated
by the hooks as they happen, and what is needed to bracket its polls. It is
also the task's poll mark in the loop's ready queue (see ``hooks``): being
its own marker saves an object per live task, which the cyclic garbage
collector would walk at every full collection.

Nothing here holds the task itself but a weak reference, which reports a task
destroyed while pending.
"""

from __future__ import annotations

import contextvars
import weakref
from typing import TYPE_CHECKING, Any

from ..model import Entity, ErrorInfo, Fate, Folded, Location

if TYPE_CHECKING:
    from .tasks import TaskTracker
    from .waits import Wait

#: Set in the context of a task whose trace is sampled out: the tasks it
#: spawns copy its context, so they are muted too, and every hook tells a
#: muted task by one lookup in the context it is scheduled in, without
#: keeping anything per task.
MUTED_CONTEXT: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_asyncres_muted", default=False)


class TaskState(Entity):
    """One live task: identity, statistics, and its poll bracketing."""

    __slots__ = (
        "_callback",
        "_mark_cancelled",
        "adopted",
        "app_parent",
        "context",
        "busy",
        "cancelling",
        "clones",
        "code",
        "coroutine",
        "dependents",
        "drops",
        "error",
        "first_poll",
        "folded",
        "init_scheduled",
        "internal",
        "join_idle",
        "join_since",
        "joined_by",
        "key",
        "kind",
        "lints",
        "location",
        "lost_checked",
        "mark_open",
        "name",
        "name_hint",
        "name_unsure",
        "outcome",
        "outer",
        "parent",
        "parked_at",
        "pending_wait",
        "poll_log",
        "poll_ts",
        "polled",
        "polls",
        "ran_eagerly",
        "ref",
        "resumed",
        "resumed_at",
        "running",
        "scheduled",
        "scheduled_args",
        "scopes",
        "self_wakes",
        "tracker",
        "wait",
        "wakes",
        "woken_at",
    )

    KIND = "task"

    def __init__(
        self,
        task_id: int,
        start: int,
        parent: TaskState | None = None,
        tracker: TaskTracker | None = None,
    ) -> None:
        super().__init__(task_id, start)
        # -- identity ----------------------------------------------------------------
        #: The recorded task whose poll spawned it (None: spawned outside any
        #: task, or by a task that is not recorded).
        self.parent = parent
        #: The application's active span at spawn (a SpanContext), if any.
        self.app_parent: Any = None
        #: The task's ``contextvars.Context``, as its last step was scheduled
        #: in: where the application's current span is read at the end of a
        #: poll (ops classified there begin outside the task's context).
        self.context: Any = None
        self.coroutine = ""
        #: The name asyncio reports, read lazily (some versions set it after
        #: spawn); None until its first poll.
        self.name: str | None = None
        self.location: Location | None = None
        #: "task", or "blocking" for work run in an executor (Tokio's kinds).
        self.kind = "task"
        #: asyncio's own housekeeping (``shutdown_asyncgens``, a server's
        #: ``_accept_connection2``): never a span, transparent to its children.
        self.internal = False
        #: It existed before the instrumentation first saw it.
        self.adopted = False
        #: Its coroutine's code, where a long first poll started (``get_coro()``
        #: of an eagerly completed task crashes CPython 3.12.0 and 3.12.1).
        self.code: Any = None
        # -- statistics (Tokio Console's) ----------------------------------------------
        self.polls = 0
        self.busy = 0
        self.scheduled = 0
        self.wakes = 0
        self.self_wakes = 0
        self.clones = 0
        self.drops = 0
        #: When the wake that schedules its next poll happened (the spawn
        #: counts as the wake of the first poll); None while not scheduled.
        self.woken_at: int | None = start
        #: When the current (or last) poll started.
        self.poll_ts = 0
        #: (start, end, True) of each poll, kept for poll spans (detail=all).
        self.poll_log: list[tuple[int, int, bool]] | None = None
        #: Time parked on nothing but other tasks, and since when if now:
        #: waiting for children does not make a task worth a span.
        self.join_idle = 0
        self.join_since = 0
        # -- end ---------------------------------------------------------------------------
        self.outcome = ""
        self.error: ErrorInfo | None = None
        # -- structure -------------------------------------------------------------------
        #: Live tasks and resources it made: a task that ends before what it
        #: made is shown (what it made may be shown later, under it).
        self.dependents = 0
        #: What was folded into it (made at the first fold).
        self.folded: Folded | None = None
        #: Lints reported about it (their kinds), made at the first.
        self.lints: set[str] | None = None
        #: The tasks waiting for it through gather or wait, with since when
        #: and where: their join is decided when it ends (see ``joins``).
        self.joined_by: Any = None
        # -- bracketing the polls (as a Handle in the loop's ready queue) ------------------
        self.tracker = tracker
        self._mark_cancelled = False
        self._callback = None
        self.mark_open = False
        #: The task, held from the mark before its step to the one after it
        #: (a finished task nobody holds would be freed in between).
        self.running: Any = None
        #: The arguments its next step was scheduled with.
        self.scheduled_args: tuple[Any, ...] = ()
        self.ref: TaskRef | None = None
        self.key = 0
        self.polled = False
        self.first_poll = False
        #: Its first step was scheduled from inside create_task / ran there.
        self.init_scheduled = False
        self.ran_eagerly = False
        #: Its first poll ran before some Python versions gave it its name.
        self.name_unsure = False
        #: The name an eager task finished before receiving (3.12, 3.13.0).
        self.name_hint: str | None = None
        #: While polled: the state that was current before (an eager child's
        #: first step runs inside its parent's poll).
        self.outer: TaskState | None = None
        # -- waits -------------------------------------------------------------------------
        #: The registration it is parked on, until it is resumed.
        self.wait: Wait | None = None
        #: An op opened by an instrumented ``__await__`` in the current poll,
        #: confirmed as ``wait`` when the poll ends parked on its future.
        self.pending_wait: Wait | None = None
        #: An op resumed in the current poll that has not completed yet.
        self.resumed: Wait | None = None
        #: Ops that are scopes it is inside of (a timeout, a custom resource's
        #: op): each takes the waker of the wakes inside it.
        self.scopes: tuple[Wait, ...] = ()
        self.cancelling = 0
        #: The ``await`` the current poll resumed from, if known.
        self.resumed_at: Location | None = None
        #: When it last parked; the wait last checked for a lost waker.
        self.parked_at = 0
        self.lost_checked: Wait | None = None

    # -- as an entity ---------------------------------------------------------------------

    def owner(self) -> TaskState | None:
        parent = self.parent
        while parent is not None and parent.internal:  # housekeeping is transparent
            parent = parent.parent
        return parent

    def label(self) -> str:
        return self.name or self.coroutine

    def duration(self) -> int:
        """Its life but for the time it waited to be run and the time it
        waited for other tasks only: what makes a task worth a span."""
        end = self.ended or self.start
        return max(end - self.start - self.scheduled - self.join_idle, 0)

    def fold_target(self) -> Folded | None:
        owner = self.owner()
        if owner is None or owner.ended:
            return None
        if owner.folded is None:
            owner.folded = Folded()
        return owner.folded

    def fold_into(self, folded: Folded) -> None:
        folded.add_task(self.outcome, self.duration())
        if self.folded is not None:
            folded.merge(self.folded)

    def folded_here(self) -> Folded:
        """Its own ``Folded``, made if need be (ops folded into it)."""
        if self.folded is None:
            self.folded = Folded()
        return self.folded

    def shown(self) -> bool:
        return self.fate == Fate.SHOWN

    # -- as a Handle in the loop's ready queue -------------------------------------------

    def cancel(self) -> None:
        self._mark_cancelled = True

    @property
    def _cancelled(self) -> bool:
        """Read by the loop just before it would run an entry of its ready
        queue: the mark does its work here and answers that it is cancelled,
        so the loop skips it. A handle the loop runs is, in debug mode, timed,
        made the loop's current handle and reported when slow ("Executing
        <handle> took 0.000 seconds", for every handle when
        ``slow_callback_duration`` is 0); a skipped one is none of these, so
        debug mode reports exactly the handles it would without the marks."""
        if not self._mark_cancelled:
            self._run()
        return True

    def _run(self) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        if self.mark_open:
            self.mark_open = False
            task, self.running = self.running, None
            if task is not None:
                tracker.poll_finish(self, task)
            return
        self.mark_open = True
        task = self.ref() if self.ref is not None else None
        args, self.scheduled_args = self.scheduled_args, ()  # the step's own: not kept past it
        if task is not None:
            self.running = task
            tracker.poll_begin(self, task, args)

    def __repr__(self) -> str:
        return f"<otel-asyncres poll mark of task {self.id}>"


class TaskRef(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a task that carries its state back to the
    callback: one object per task, not a reference and a callback."""

    __slots__ = ("key", "state")
    state: TaskState
    #: The ``id()`` of the task, for a sampled-out root known by it.
    key: int


#: What the hooks answer for a task that is not recorded (its trace is sampled
#: out): it is left untouched. Compared by identity.
MUTED = TaskState(0, 0)
MUTED.fate = Fate.FOLDED
