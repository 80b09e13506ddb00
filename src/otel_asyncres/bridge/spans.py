"""The bridge: a sink that maps records onto OpenTelemetry spans.

Every span is started with an explicit parent context built from the records
alone (``Context()`` plus the parent span, or an empty ``Context()`` for a new
trace), never from the current context: the bridge runs on the recorder's
thread, where the current context means nothing. Start and end times and event
timestamps are the records' own. Relations other than the parent become links.

Spans are spent where they show something (DESIGN.md §4). Each task, resource
and op is an entity (see ``entities``) that becomes a span when the policy
says so: a task that lived at least ``min_task_duration`` or failed, an op
that waited at least ``min_wait_duration`` or did not end well, a resource
that lived at least ``min_task_duration`` or whose op is shown, and whatever
a shown span needs (its parent, the task its link points at). The rest is
counted on its parent (``asyncio.task.hidden_tasks``, ``hidden_waits``,
``asyncio.resource.hidden_ops``). With both thresholds at zero everything is
shown. Long-lived entities are exported in windows.

Task statistics follow Tokio Console's definitions: ``busy`` is time inside
polls, ``scheduled`` the time from a wake (or the spawn) to the poll it caused,
``idle`` the rest of the task's life. A wake by a completed future consumes the
task's registration and so counts as a waker drop, as in Tokio, where waking a
waker by value drops it: clones minus drops is the number still registered.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode

from .. import records as r
from ..recorder import Dispatcher
from ..records import Location, Outcome, Severity, StateOp, StateValue, WakeCause
from . import semconv as sc
from .entities import SpanEntity, Windows

#: Names asyncio gives when the user gave none: "Task-7", and on CPython 3.13.0
#: "None" for tasks made by a task factory (a CPython bug, fixed later). The
#: span is then named after the coroutine; the attribute keeps the real name.
_DEFAULT_TASK_NAME = re.compile(r"(Task-\d+|None)\Z")

#: The resource a task is to the tasks that await it (instrumentation.joins).
_TASK_RESOURCE = "asyncio.Task"

#: Resources used by exactly one op over their whole life (a sleep's timer):
#: their span would say nothing that op's span does not (see _Resource.folded).
_ONE_OP_RESOURCES = frozenset({"asyncio.sleep"})

#: Entities still open are shown once they have lived this long (or their
#: threshold, if longer), so that long-lived ones reach a backend while they
#: live; at exit, whatever is open and past its threshold is shown.
LIVE_SHOWN_AFTER_NS = 1_000_000_000

#: How many ended tasks are kept for links made after they ended (a scope
#: woken by a task that has finished since, shown retroactively if need be).
RECENT_TASKS_KEPT = 1024

DETAILS = ("tasks", "resources", "all")


@dataclass(frozen=True)
class BridgeOptions:
    """How the records are shaped into spans."""

    #: The parent of an async op span: "task" (the awaiting task, so that a
    #: request's trace shows what it waited on) or "resource" (as in Tokio).
    op_parent: str = "task"
    #: A ``poll`` span per poll of an async op; None: only with detail "all"
    #: (each poll is a ``poll_op`` event on the op's span in any case).
    op_poll_spans: bool | None = None
    #: Spans for asyncio's own housekeeping tasks; without them such a task is
    #: transparent: what it spawns is parented to its parent.
    internal_tasks: bool = False
    #: Spans for resources a primitive made for itself (a Queue's Event, a
    #: Condition's own Lock); their owner's span shows what matters.
    internal_resources: bool = False
    #: "tasks" (only tasks), "resources" (tasks, resources and ops) or "all"
    #: (everything, whatever the thresholds, and a ``poll`` span per task poll).
    detail: str = "resources"
    #: Tasks (and resources) shorter than this are counted, not shown.
    min_task_ns: int = 0
    #: Waits shorter than this are counted, not shown.
    min_wait_ns: int = 0
    #: A window of a long-lived span ends after this long...
    window_ns: int = 10_000_000_000
    #: ... or with this many events (below the SDK's limit of 128).
    window_events: int = 120


def _code_attributes(location: Location | None) -> dict[str, Any]:
    if location is None:
        return {}
    return {
        sc.CODE_FILE_PATH: location.file,
        sc.CODE_LINE_NUMBER: location.line,
        sc.CODE_FUNCTION_NAME: location.function,
    }


def _seconds(ns: int) -> float:
    return max(ns, 0) / 1e9


def _apply(current: StateValue | None, value: StateValue, op: str) -> StateValue:
    if op == StateOp.ADD and isinstance(current, (int, float)) and isinstance(value, (int, float)):
        return current + value
    if op == StateOp.SUB and isinstance(current, (int, float)) and isinstance(value, (int, float)):
        return current - value
    return value


def _state_event(attribute: str, value: StateValue, op: str, unit: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {attribute: value, f"{attribute}.op": op}
    if unit is not None:
        attrs[f"{attribute}.unit"] = unit
    return attrs


class _Task(SpanEntity):
    """A task, its own span entity (one object per live task, not two)."""

    __slots__ = (
        "app_parent",
        "busy",
        "clones",
        "drops",
        "error",
        "hidden_tasks",
        "hidden_waits",
        "join_idle",
        "join_since",
        "joined_by",
        "joins_open",
        "poll_started",
        "polls",
        "scheduled",
        "self_wakes",
        "spawned",
        "spawner",
        "transparent",
        "waits_open",
        "wakes",
        "woken_at",
    )

    def __init__(
        self,
        name: str,
        attributes: dict[str, Any],
        parent: SpanEntity | Context | None,
        spawned: int,
        app_parent: Any,
        spawner: _Task | None,
        transparent: bool = False,
    ) -> None:
        super().__init__(name, spawned, attributes, parent)
        #: asyncio's housekeeping tasks are transparent: never spans.
        self.transparent = transparent
        self.spawned = spawned
        self.app_parent = app_parent
        #: The task that spawned it (its span's parent may be another).
        self.spawner = spawner
        self.polls = 0
        self.busy = 0
        self.scheduled = 0
        self.wakes = 0
        self.self_wakes = 0
        self.clones = 0
        self.drops = 0
        self.hidden_tasks = 0
        self.hidden_waits = 0
        self.error: r.ErrorInfo | None = None
        self.poll_started: int | None = None
        #: The spawn counts as the wake that schedules the first poll.
        self.woken_at: int | None = spawned
        #: Open ops of this task waiting for other tasks, and the others.
        self.joins_open = 0
        self.waits_open = 0
        #: Time parked on nothing but other tasks (since when, if parked now):
        #: waiting for children is only worth a span if the children are.
        self.join_idle = 0
        self.join_since: int | None = None
        #: Ops waiting for this task, ended before it: decided when it ends
        #: (made when there is one: most tasks have none).
        self.joined_by: list[tuple[_Op, int, str | None, r.ErrorInfo | None]] | None = None

    def active(self, now: int) -> int:
        """Its life so far but for the time it waited to be run and the time
        it waited for other tasks only: what makes a task worth a span."""
        active = now - self.spawned - self.scheduled - self.join_idle
        if self.woken_at is not None and self.poll_started is None:
            active -= max(now - self.woken_at, 0)  # waiting to be run now
        if self.join_since is not None:
            active -= max(now - self.join_since, 0)
        return active

    @property
    def entity(self) -> SpanEntity | None:
        return None if self.transparent else self

    def describe(self, ts: int) -> dict[str, Any] | None:
        return self.statistics(ts)

    def statistics(self, end: int) -> dict[str, Any]:
        lifetime = max(end - self.spawned, 0)
        stats = {
            sc.TASK_POLLS: self.polls,
            sc.TASK_BUSY: _seconds(self.busy),
            sc.TASK_SCHEDULED: _seconds(self.scheduled),
            sc.TASK_IDLE: _seconds(lifetime - self.busy - self.scheduled),
            sc.TASK_WAKES: self.wakes,
            sc.TASK_SELF_WAKES: self.self_wakes,
            sc.TASK_WAKER_CLONES: self.clones,
            sc.TASK_WAKER_DROPS: self.drops,
        }
        if self.hidden_tasks:
            stats[sc.TASK_HIDDEN_TASKS] = self.hidden_tasks
        if self.hidden_waits:
            stats[sc.TASK_HIDDEN_WAITS] = self.hidden_waits
        return stats


class _Resource(SpanEntity):
    """A resource, its own span entity (one object per resource, not two)."""

    __slots__ = ("folded", "hidden_ops", "state")

    def __init__(
        self,
        name: str,
        created: int,
        attributes: dict[str, Any],
        parent: SpanEntity | Context,
        state: dict[str, StateValue],
        folded: bool,
    ) -> None:
        super().__init__(name, created, attributes, parent)
        self.state = dict(state)
        self.hidden_ops = 0
        #: Never a span of its own: a sleep's timer is its one op's (the tree
        #: benchmarks' 47,000 sleeps made two spans each where one says it
        #: all); that op carries the resource's identity and state instead.
        self.folded = folded

    def identity(self) -> dict[str, Any]:
        """What the op of a folded resource carries of it."""
        attributes = {k: v for k, v in self._attributes.items() if k.startswith(sc.RESOURCE_PREFIX)}
        attributes.update((sc.RESOURCE_STATE_PREFIX + k, v) for k, v in self.state.items())
        return attributes

    def describe(self, ts: int) -> dict[str, Any] | None:
        return self.final_state()

    def final_state(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {sc.RESOURCE_STATE_PREFIX + k: v for k, v in self.state.items()}
        if self.hidden_ops:
            attrs[sc.RESOURCE_HIDDEN_OPS] = self.hidden_ops
        return attrs


class _Op(SpanEntity):
    """An async op, its own span entity."""

    __slots__ = (
        "awaited",
        "code",
        "op_id",
        "poll_count",
        "poll_start",
        "polls",
        "resource",
        "task_id",
        "wakers",
    )

    def __init__(
        self,
        name: str,
        attributes: dict[str, Any],
        parent: SpanEntity | Context,
        op_id: int,
        created: int,
        task_id: int | None,
        resource: _Resource | None,
        code: dict[str, Any],
        awaited: int | None,
    ) -> None:
        super().__init__(name, created, attributes, parent)
        self.op_id = op_id
        #: For a wait on a task (a join): that task's id.
        self.awaited = awaited
        #: Its creation is the start of its first poll.
        self.poll_count = 1
        self.poll_start: int | None = created
        self.task_id = task_id
        #: Kept with the op: a task's resource ends before the gather op on it.
        self.resource = resource
        self.code = code
        #: (start, end, is_ready) of each poll, made into spans when shown
        #: (kept only when there are poll spans to make).
        self.polls: list[tuple[int, int, bool]] | None = None
        #: Tasks whose action woke the op, linked when it is shown.
        self.wakers: list[int] | None = None


class SpanBridge(Dispatcher):
    """Maps the record stream onto spans of one tracer."""

    def __init__(
        self,
        tracer: trace.Tracer,
        options: BridgeOptions | None = None,
        prestarted: dict[int, Any] | None = None,
    ) -> None:
        self._tracer = tracer
        #: Root-task spans the sampler was asked with at spawn (see ``sampling``).
        self._prestarted = prestarted if prestarted is not None else {}
        self._options = options = options or BridgeOptions()
        self._windows = Windows(options.window_ns, options.window_events)
        self._everything = options.detail == "all"
        self._min_task = 0 if self._everything else options.min_task_ns
        self._min_wait = 0 if self._everything else options.min_wait_ns
        self._resources_too = options.detail != "tasks"
        self._op_polls = self._everything if options.op_poll_spans is None else options.op_poll_spans
        self._tasks: dict[int, _Task] = {}
        self._resources: dict[int, _Resource] = {}
        #: Tasks awaited by others, as resources: resource id -> task id. A
        #: task is its own span already; as a resource it is only what its
        #: joins link to (a wait per gathered task: tens of thousands of
        #: entities saved on the tree benchmarks).
        self._joined: dict[int, int] = {}
        self._ops: dict[int, _Op] = {}
        #: Recently ended tasks, for links made after they ended; bounded.
        self._recent: OrderedDict[int, _Task] = OrderedDict()
        #: Spans the export dropped since last asked: said on the next task span.
        self.dropped_spans: Callable[[], int] = lambda: 0
        handlers: dict[type, Callable[[Any], None]] = {
            r.TaskSpawned: self._task_spawned,
            r.TaskNamed: self._task_named,
            r.TaskWoken: self._task_woken,
            r.TaskPollStarted: self._poll_started,
            r.TaskPollEnded: self._poll_ended,
            r.TaskClosed: self._task_closed,
            r.WakerCloned: self._waker_cloned,
            r.WakerDropped: self._waker_dropped,
            r.Diagnostic: self._diagnostic,
        }
        if self._resources_too:
            handlers.update(
                {
                    r.ResourceCreated: self._resource_created,
                    r.ResourceStateUpdated: self._resource_state,
                    r.ResourceClosed: self._resource_closed,
                    r.AsyncOpCreated: self._op_created,
                    r.AsyncOpPollStarted: self._op_poll_started,
                    r.PollOp: self._poll_op,
                    r.AsyncOpStateUpdated: self._op_state,
                    r.AsyncOpClosed: self._op_closed,
                }
            )
        super().__init__(handlers)

    # -- Sink ------------------------------------------------------------------

    def tick(self, now: int) -> None:
        """Called regularly: show what has lived long enough to be shown, and
        end the windows that have lasted long enough."""
        try:
            self._show_long_lived(now)
            self._roll_due_windows(now)
        except Exception:
            self.errors += 1

    def flush(self, final: bool = False) -> None:
        if final:
            self._end_unfinished(time_ns())

    def shutdown(self) -> None:
        self._end_unfinished(time_ns())

    def open_spans(self) -> int:
        return len(self._tasks) + len(self._resources) + len(self._ops)

    # -- policy ------------------------------------------------------------------------

    def _show(self, entity: SpanEntity) -> Context | None:
        return entity.materialize(self._tracer, self._windows)

    def _show_long_lived(self, now: int, at_exit: bool = False) -> None:
        """Show the open entities that have lived long enough: while the
        program runs, LIVE_SHOWN_AFTER_NS (or their threshold); at exit, their
        threshold."""
        live = 0 if at_exit else LIVE_SHOWN_AFTER_NS
        min_task, min_wait = max(self._min_task, live), max(self._min_wait, live)
        for task in self._tasks.values():
            if task.entity is not None and not task.entity.shown and task.active(now) >= min_task:
                self._show(task.entity)
        for res in self._resources.values():
            if not res.shown and not res.folded and now - res.start >= min_task:
                self._show(res)
        for op in self._ops.values():
            if not op.shown and now - op.start >= min_wait and self._awaits_shown_or_none(op):
                self._show_op(op)

    def _roll_due_windows(self, now: int) -> None:
        windows = self._windows
        entities = [t.entity for t in self._tasks.values() if t.entity is not None]
        entities += self._resources.values()
        entities += self._ops.values()
        for entity in entities:
            if entity.due(now, windows):
                entity.roll(now, self._tracer)

    def _end_unfinished(self, now: int) -> None:
        """Spans reach a backend only when they end: at exit, end what is still
        open, marked unfinished, rather than lose it."""
        self._show_long_lived(now, at_exit=True)
        for op_id in list(self._ops):
            self._end_op(op_id, now, None, unfinished=True)
        for task_id, task in list(self._tasks.items()):
            del self._tasks[task_id]
            if task.entity is not None:
                task.entity.end(now, {**task.statistics(now), sc.UNFINISHED: True})
            self._settle_joins(task)
        for rid in list(self._resources):
            self._end_resource(rid, now, unfinished=True)
        self._joined.clear()

    # -- tasks -------------------------------------------------------------------

    def _task_spawned(self, rec: r.TaskSpawned) -> None:
        spawner = self._tasks.get(rec.parent_id) if rec.parent_id is not None else None
        anchor = spawner
        while anchor is not None and anchor.entity is None:  # transparent housekeeping
            anchor = anchor.spawner
        app = rec.app_parent
        parent: SpanEntity | Context | None
        spawned_by = None
        if isinstance(app, SpanContext) and (spawner is None or app != spawner.app_parent):
            # Spawned inside an application span (a request, say): the task
            # belongs in that trace; the spawning task is linked.
            parent = trace.set_span_in_context(NonRecordingSpan(app), Context())
            spawned_by = anchor
        elif anchor is not None and anchor.entity is not None:
            parent = anchor.entity
        elif anchor is None and spawner is not None:
            parent = Context() if spawner.app_parent is None else self._app_context(spawner.app_parent)
        else:
            parent = Context()  # a new trace
        if rec.internal and not self._options.internal_tasks:
            self._tasks[rec.task_id] = _Task("", {}, None, rec.ts, app, spawner, transparent=True)
            return
        attributes: dict[str, Any] = {
            sc.TASK_ID: rec.task_id,
            sc.TASK_KIND: rec.kind,
            sc.TASK_COROUTINE: rec.coroutine,
            **_code_attributes(rec.location),
        }
        if rec.parent_id is not None:
            attributes[sc.TASK_PARENT_ID] = rec.parent_id
        if rec.adopted:
            attributes[sc.TASK_ADOPTED] = True
        task = _Task(sc.TASK_SPAN.format(rec.coroutine), attributes, parent, rec.ts, app, spawner)
        self._tasks[rec.task_id] = task
        if spawned_by is not None and spawned_by.entity is not None:
            context = self._task_span_context(spawned_by)
            if context is not None:
                task.add_link(context, {sc.LINK_RELATION: sc.LINK_SPAWNED_BY})
        if self._everything:
            self._show(task)

    @staticmethod
    def _app_context(app: Any) -> Context:
        return trace.set_span_in_context(NonRecordingSpan(app), Context())

    def _task_span_context(self, task: _Task) -> SpanContext | None:
        """The span context of a task, making it a span if it is not one."""
        entity = task.entity
        if entity is None:
            return None
        self._show(entity)
        return entity.span.get_span_context() if entity.span is not None else None

    def _task_context_by_id(self, task_id: int) -> SpanContext | None:
        task = self._tasks.get(task_id) or self._recent.get(task_id)
        return self._task_span_context(task) if task is not None else None

    def _task_named(self, rec: r.TaskNamed) -> None:
        task = self._tasks.get(rec.task_id)
        if task is None or task.entity is None:
            return
        task.entity.set_attributes({sc.TASK_NAME: rec.name})
        if not _DEFAULT_TASK_NAME.match(rec.name):
            task.entity.rename(sc.TASK_SPAN.format(rec.name))

    def _event(self, entity: SpanEntity, name: str, attrs: dict[str, Any], ts: int) -> None:
        entity.add_event(name, attrs, ts, self._tracer, self._windows)

    def _task_woken(self, rec: r.TaskWoken) -> None:
        task = self._tasks.get(rec.task_id)
        if task is None:
            return
        is_self = rec.waker_id == rec.task_id
        task.wakes += 1
        if is_self:
            task.self_wakes += 1
        if rec.cause == WakeCause.FUTURE:
            task.drops += 1  # the wake consumed the registration
        if task.woken_at is None:
            task.woken_at = rec.ts
        if task.join_since is not None:
            task.join_idle += max(rec.ts - task.join_since, 0)
            task.join_since = None
        if task.entity is not None:
            attrs: dict[str, Any] = {sc.TASK_ID: rec.task_id, sc.WAKE_CAUSE: rec.cause, sc.WAKE_SELF: is_self}
            if rec.waker_id is not None:
                attrs[sc.WAKER_TASK_ID] = rec.waker_id
            if rec.resource_id is not None:
                attrs[sc.RESOURCE_ID] = rec.resource_id
            if rec.op_id is not None:
                attrs[sc.ASYNC_OP_ID] = rec.op_id
            self._event(task.entity, sc.EVENT_WAKER_WAKE, attrs, rec.ts)
        op = self._ops.get(rec.op_id) if rec.op_id is not None else None
        if op is not None and rec.waker_id is not None:
            self._note_waker(op, rec.waker_id)

    def _note_waker(self, op: _Op, waker_id: int) -> None:
        op.set_attributes({sc.WAKER_TASK_ID: waker_id})
        if op.wakers is None:
            op.wakers = []
        op.wakers.append(waker_id)
        if op.shown:
            self._link_wakers(op)

    def _link_wakers(self, op: _Op) -> None:
        wakers, op.wakers = op.wakers, None
        for waker_id in wakers or ():
            context = self._task_context_by_id(waker_id)
            if context is not None:
                op.add_link(context, {sc.LINK_RELATION: sc.LINK_WOKEN_BY})

    def _poll_started(self, rec: r.TaskPollStarted) -> None:
        task = self._tasks.get(rec.task_id)
        if task is None:
            return
        task.polls += 1
        task.poll_started = rec.ts
        woken = task.woken_at
        # A wake recorded inside an eager first poll arrives before that poll's
        # start record: it schedules the next poll, not this one.
        if woken is not None and woken <= rec.ts:
            task.scheduled += rec.ts - woken
            task.woken_at = None

    def _poll_ended(self, rec: r.TaskPollEnded) -> None:
        task = self._tasks.get(rec.task_id)
        if task is None or task.poll_started is None:
            return
        started, task.poll_started = task.poll_started, None
        task.busy += max(rec.ts - started, 0)
        if task.woken_at is not None and task.woken_at < rec.ts:
            # Woken during its own poll (a yield): it waits to be run again
            # only from the end of this poll; before that it was busy.
            task.woken_at = rec.ts
        if self._everything and task.entity is not None:
            self._poll_span(task.entity, started, rec.ts, {sc.TASK_ID: rec.task_id})

    def _poll_span(self, parent: SpanEntity, start: int, end: int, attributes: dict[str, Any]) -> None:
        context = self._show(parent)
        if context is not None:
            span = self._tracer.start_span(
                sc.POLL_SPAN, context=context, attributes=attributes, start_time=start
            )
            span.end(end_time=end)

    def _waker_cloned(self, rec: r.WakerCloned) -> None:
        task = self._tasks.get(rec.task_id)
        if task is None:
            return
        task.clones += 1
        if task.joins_open and not task.waits_open:
            task.join_since = rec.ts
        if task.entity is None:
            return
        attrs: dict[str, Any] = {sc.TASK_ID: rec.task_id}
        if rec.resource_id is not None:
            attrs[sc.RESOURCE_ID] = rec.resource_id
        if rec.op_id is not None:
            attrs[sc.ASYNC_OP_ID] = rec.op_id
        if rec.awaited_task_id is not None:
            attrs[sc.AWAITED_TASK_ID] = rec.awaited_task_id
        self._event(task.entity, sc.EVENT_WAKER_CLONE, attrs, rec.ts)

    def _waker_dropped(self, rec: r.WakerDropped) -> None:
        task = self._tasks.get(rec.task_id)
        if task is None:
            return
        task.drops += 1
        if task.entity is None:
            return
        attrs: dict[str, Any] = {sc.TASK_ID: rec.task_id, sc.WAKER_DROP_REASON: rec.reason}
        if rec.resource_id is not None:
            attrs[sc.RESOURCE_ID] = rec.resource_id
        if rec.op_id is not None:
            attrs[sc.ASYNC_OP_ID] = rec.op_id
        self._event(task.entity, sc.EVENT_WAKER_DROP, attrs, rec.ts)

    def _task_closed(self, rec: r.TaskClosed) -> None:
        task = self._tasks.pop(rec.task_id, None)
        if task is None:
            return
        if task.poll_started is not None:  # closed from inside a poll
            task.busy += max(rec.ts - task.poll_started, 0)
        entity = task.entity
        if entity is not None:
            attributes = {**task.statistics(rec.ts), sc.TASK_OUTCOME: rec.outcome}
            if self._task_worth_showing(task, rec.ts, rec.outcome):
                self._show(entity)
                _record_error(entity, rec.error, rec.ts, self._tracer, self._windows)
                dropped = self.dropped_spans()
                if dropped:
                    attributes[sc.DROPPED_SPANS] = dropped
            else:
                entity.forget_events()
                if task.spawner is not None:
                    task.spawner.hidden_tasks += 1
            entity.end(rec.ts, attributes)
            task.spawner = None  # ended: it no longer needs its ancestors alive
            self._recent[rec.task_id] = task
            if len(self._recent) > RECENT_TASKS_KEPT:
                self._recent.popitem(last=False)
        self._settle_joins(task)

    def _task_worth_showing(self, task: _Task, ts: int, outcome: str) -> bool:
        """Shown already (something under it is), failed, a trace's root, or
        active long enough: its life less the time it waited to be run or
        waited for other tasks only."""
        entity = task.entity
        if entity is None:
            return False
        if entity.shown or outcome in (Outcome.ERROR, Outcome.LOST):
            return True
        if task.spawner is None and task.app_parent is None:
            return True
        return task.active(ts) >= self._min_task

    def _diagnostic(self, rec: r.Diagnostic) -> None:
        """A lint is an event on its task's span (made a span for it, as a
        failure would be); an error marks the span's status."""
        task = self._tasks.get(rec.task_id) or self._recent.get(rec.task_id)
        while task is not None and task.entity is None:  # a housekeeping task: its parent's
            task = task.spawner
        if task is None or task.entity is None or self._show(task.entity) is None:
            return
        attributes: dict[str, Any] = {sc.LINT_SEVERITY: rec.severity, sc.LINT_MESSAGE: rec.message}
        attributes.update((sc.LINT_PREFIX + k, v) for k, v in rec.attributes.items())
        self._event(task.entity, rec.kind, attributes, rec.ts)
        span = task.entity.span
        if rec.severity == Severity.ERROR and span is not None and not task.entity.ended:
            span.set_status(Status(StatusCode.ERROR, f"{rec.kind}: {rec.message}"))

    def _settle_joins(self, task: _Task) -> None:
        """The ops that waited for this task, now that it is decided."""
        joined, task.joined_by = task.joined_by, None
        for op, ts, outcome, error in joined or ():
            self._finish_op(op, ts, outcome, error, False)

    # -- resources -----------------------------------------------------------------

    def _resource_created(self, rec: r.ResourceCreated) -> None:
        if rec.is_internal and not self._options.internal_resources:
            return
        if rec.concrete_type == _TASK_RESOURCE and rec.task_id is not None:
            self._joined[rec.resource_id] = rec.task_id
            return
        parent: SpanEntity | Context
        if rec.parent_resource_id is not None and rec.parent_resource_id in self._resources:
            parent = self._resources[rec.parent_resource_id]
        else:
            owner = self._tasks.get(rec.task_id) if rec.task_id is not None else None
            while owner is not None and owner.entity is None:  # an internal task's is its parent's
                owner = owner.spawner
            parent = owner.entity if owner is not None and owner.entity is not None else Context()
        attributes: dict[str, Any] = {
            sc.RESOURCE_ID: rec.resource_id,
            sc.RESOURCE_CONCRETE_TYPE: rec.concrete_type,
            sc.RESOURCE_KIND: rec.kind,
            sc.RESOURCE_IS_INTERNAL: rec.is_internal,
            **_code_attributes(rec.location),
            **{sc.RESOURCE_STATE_PREFIX + k: v for k, v in rec.state.items()},
            **{f"{sc.RESOURCE_STATE_PREFIX}{k}.unit": unit for k, unit in rec.units.items()},
        }
        if rec.adopted:
            attributes[sc.RESOURCE_ADOPTED] = True
        if rec.parent_resource_id is not None:
            attributes[sc.RESOURCE_PARENT_ID] = rec.parent_resource_id
        if rec.task_id is not None:
            attributes[sc.TASK_ID] = rec.task_id
        folded = rec.concrete_type in _ONE_OP_RESOURCES
        name = sc.RESOURCE_SPAN.format(rec.concrete_type)
        res = _Resource(name, rec.ts, attributes, parent, rec.state, folded)
        self._resources[rec.resource_id] = res
        if self._everything and not folded:
            self._show(res)

    def _resource_state(self, rec: r.ResourceStateUpdated) -> None:
        res = self._resources.get(rec.resource_id)
        if res is None:
            return
        res.state[rec.attribute] = _apply(res.state.get(rec.attribute), rec.value, rec.op)
        if not res.folded:
            attrs = _state_event(rec.attribute, rec.value, rec.op, rec.unit)
            self._event(res, sc.EVENT_STATE_UPDATE, attrs, rec.ts)

    def _resource_closed(self, rec: r.ResourceClosed) -> None:
        if self._joined.pop(rec.resource_id, None) is None:
            self._end_resource(rec.resource_id, rec.ts)

    def _end_resource(self, rid: int, ts: int, unfinished: bool = False) -> None:
        res = self._resources.pop(rid, None)
        if res is None:
            return
        if not res.shown and not res.folded and ts - res.start >= self._min_task:
            self._show(res)
        attributes = res.final_state()
        if unfinished:
            attributes[sc.UNFINISHED] = True
        res.end(ts, attributes)

    # -- async ops -----------------------------------------------------------------

    def _op_created(self, rec: r.AsyncOpCreated) -> None:
        waiting = task = self._tasks.get(rec.task_id) if rec.task_id is not None else None
        while task is not None and task.entity is None:
            task = task.spawner
        res = self._resources.get(rec.resource_id)
        awaited = self._joined.get(rec.resource_id)
        if waiting is not None:
            if awaited is not None:
                waiting.joins_open += 1
            else:
                waiting.waits_open += 1
        code = _code_attributes(rec.location)
        attributes: dict[str, Any] = {
            sc.ASYNC_OP_ID: rec.op_id,
            sc.ASYNC_OP_SOURCE: rec.source,
            sc.RESOURCE_ID: rec.resource_id,
            **code,
        }
        if rec.task_id is not None:
            attributes[sc.TASK_ID] = rec.task_id
        by_resource = self._options.op_parent == "resource" and not (res is not None and res.folded)
        task_entity = task.entity if task is not None else None
        first, second = (res, task_entity) if by_resource else (task_entity, res)
        parent: SpanEntity | Context = first or second or Context()
        name = sc.ASYNC_OP_SPAN.format(rec.source)
        op = _Op(name, attributes, parent, rec.op_id, rec.ts, rec.task_id, res, code, awaited)
        self._ops[rec.op_id] = op
        if self._everything:
            self._show_op(op)

    def _show_op(self, op: _Op) -> None:
        """Make the op a span, with its link to the resource or the task (the
        one that is not its parent) and to the tasks that woke it."""
        if op.shown or self._show(op) is None:
            return
        res = op.resource
        context = None
        if res is not None and op.parent is res:
            task = self._tasks.get(op.task_id) if op.task_id is not None else None
            context = self._task_span_context(task) if task is not None else None
            relation = sc.LINK_AWAITED_BY
        else:
            relation = sc.LINK_RESOURCE
            if op.awaited is not None:
                op.set_attributes({sc.AWAITED_TASK_ID: op.awaited})
                context = self._task_context_by_id(op.awaited)
            elif res is not None and res.folded:
                op.set_attributes(res.identity())
            elif res is not None and self._show(res) is not None:
                context = res.span.get_span_context() if res.span is not None else None
        if context is not None:
            op.add_link(context, {sc.LINK_RELATION: relation})
        self._link_wakers(op)

    def _op_poll_started(self, rec: r.AsyncOpPollStarted) -> None:
        op = self._ops.get(rec.op_id)
        if op is not None:
            op.poll_start = rec.ts
            op.poll_count += 1

    def _poll_op(self, rec: r.PollOp) -> None:
        op = self._ops.get(rec.op_id)
        if op is None:
            return
        if self._op_polls or (op.poll_count > 1 and not rec.is_ready):
            # Unless every poll is asked for (its span too), only a poll that
            # resumed the op and left it pending (a wake that did not complete
            # it) is an event: the first poll's end is the span's start, the
            # ready one its end, and their number is asyncio.async_op.polls.
            self._event(
                op,
                sc.EVENT_POLL_OP,
                {sc.EVENT_OP_NAME: rec.op_name, sc.EVENT_IS_READY: rec.is_ready},
                rec.ts,
            )
        start, op.poll_start = op.poll_start, None
        if start is not None and self._op_polls:
            self._keep_poll(op, start, rec.ts, rec.is_ready)
            if op.shown:
                self._op_poll_spans(op)

    @staticmethod
    def _keep_poll(op: _Op, start: int, end: int, ready: bool) -> None:
        if op.polls is None:
            op.polls = []
        op.polls.append((start, end, ready))

    def _op_poll_spans(self, op: _Op) -> None:
        polls, op.polls = op.polls, None
        for start, end, ready in polls or ():
            attributes: dict[str, Any] = {sc.ASYNC_OP_ID: op.op_id, **op.code, sc.POLL_IS_READY: ready}
            if op.task_id is not None:
                attributes[sc.TASK_ID] = op.task_id
            self._poll_span(op, start, end, attributes)

    def _op_state(self, rec: r.AsyncOpStateUpdated) -> None:
        op = self._ops.get(rec.op_id)
        if op is None:
            return
        op.set_attributes({sc.ASYNC_OP_STATE_PREFIX + rec.attribute: rec.value})
        attrs = _state_event(rec.attribute, rec.value, rec.op, rec.unit)
        self._event(op, sc.EVENT_STATE_UPDATE, attrs, rec.ts)

    def _op_closed(self, rec: r.AsyncOpClosed) -> None:
        op = self._ops.get(rec.op_id)
        if op is not None and rec.waker_id is not None:
            self._note_waker(op, rec.waker_id)
        self._end_op(rec.op_id, rec.ts, rec.outcome, error=rec.error)

    def _end_op(
        self,
        op_id: int,
        ts: int,
        outcome: str | None,
        error: r.ErrorInfo | None = None,
        unfinished: bool = False,
    ) -> None:
        op = self._ops.pop(op_id, None)
        if op is None:
            return
        awaited = op.awaited
        waiting = self._tasks.get(op.task_id) if op.task_id is not None else None
        if waiting is not None:
            if awaited is not None:
                waiting.joins_open -= 1
            else:
                waiting.waits_open -= 1
        target = self._tasks.get(awaited) if awaited is not None else None
        if target is not None and not op.shown and not unfinished and outcome == Outcome.OK:
            # A wait for a task that is ending (gather's ops end just before
            # the task's own record): worth a span only if the task is.
            if target.joined_by is None:
                target.joined_by = []
            target.joined_by.append((op, ts, outcome, error))
            return
        self._finish_op(op, ts, outcome, error, unfinished)

    def _finish_op(
        self, op: _Op, ts: int, outcome: str | None, error: r.ErrorInfo | None, unfinished: bool
    ) -> None:
        if not op.shown and self._op_worth_showing(op, ts, outcome, unfinished):
            self._show_op(op)
        if not op.shown:
            self._count_hidden(op)
            op.end(ts)
            return
        if op.poll_start is not None and self._op_polls:  # a poll still running at exit
            self._keep_poll(op, op.poll_start, ts, False)
        self._op_poll_spans(op)
        attributes: dict[str, Any] = {sc.ASYNC_OP_POLLS: op.poll_count}
        if op.resource is not None and op.resource.folded:
            attributes.update(op.resource.identity())
        if outcome is not None:
            attributes[sc.ASYNC_OP_OUTCOME] = outcome
        if unfinished:
            attributes[sc.UNFINISHED] = True
        _record_error(op, error, ts, self._tracer, self._windows)
        op.end(ts, attributes)

    def _op_worth_showing(self, op: _Op, ts: int, outcome: str | None, unfinished: bool) -> bool:
        """A wait that did not end well, or lasted long enough; a wait for a
        task only if that task is shown (waiting for trivial tasks is their
        scheduling, counted on the waiting task)."""
        if unfinished or outcome != Outcome.OK:
            return True
        return ts - op.start >= self._min_wait and self._awaits_shown_or_none(op)

    def _awaits_shown_or_none(self, op: _Op) -> bool:
        """Whether the op waits for no task, or for a task that is shown."""
        awaited = op.awaited
        if awaited is None:
            return True
        task = self._tasks.get(awaited) or self._recent.get(awaited)
        return task is not None and task.entity is not None and task.entity.shown

    def _count_hidden(self, op: _Op) -> None:
        task = self._tasks.get(op.task_id) if op.task_id is not None else None
        if task is not None:
            task.hidden_waits += 1
        if op.resource is not None:
            op.resource.hidden_ops += 1


def _record_error(
    entity: SpanEntity, error: r.ErrorInfo | None, ts: int, tracer: Any, windows: Windows
) -> None:
    """OpenTelemetry's standard ``exception`` event and an error status."""
    if error is None or entity.span is None:
        return
    attributes = {
        "exception.type": error.type,
        "exception.message": error.message,
        "exception.stacktrace": error.stacktrace,
    }
    entity.add_event("exception", attributes, ts, tracer, windows)
    assert entity.span is not None
    entity.span.set_status(Status(StatusCode.ERROR, f"{error.type}: {error.message}"))
