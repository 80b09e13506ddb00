"""The bridge: a sink that maps records onto OpenTelemetry spans.

Every span is started with an explicit parent context built from the records
alone (``Context()`` plus the parent span, or an empty ``Context()`` for a new
trace), never from the current context: the bridge runs on the recorder's
thread, where the current context means nothing. Start and end times and event
timestamps are the records' own. Relations other than the parent become links.

Task statistics follow Tokio Console's definitions: ``busy`` is time inside
polls, ``scheduled`` the time from a wake (or the spawn) to the poll it caused,
``idle`` the rest of the task's life. A wake by a completed future consumes the
task's registration and so counts as a waker drop, as in Tokio, where waking a
waker by value drops it: clones minus drops is the number still registered.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, Status, StatusCode

from .. import records as r
from ..records import Location, StateOp, StateValue, WakeCause
from . import semconv as sc

#: Names asyncio gives when the user gave none: "Task-7", and on CPython 3.13.0
#: "None" for tasks made by a task factory (a CPython bug, fixed later). The
#: span is then named after the coroutine; the attribute keeps the real name.
#: How many ended tasks' span contexts are kept for late links.
_ENDED_KEPT = 4096

_DEFAULT_TASK_NAME = re.compile(r"(Task-\d+|None)\Z")


@dataclass(frozen=True)
class BridgeOptions:
    """How the records are shaped into spans."""

    #: The parent of an async op span: "task" (the awaiting task, so that a
    #: request's trace shows what it waited on) or "resource" (as in Tokio).
    op_parent: str = "task"
    #: A ``poll`` span per poll of an async op.
    op_poll_spans: bool = True
    #: Spans for asyncio's own housekeeping tasks; without them such a task is
    #: transparent: what it spawns is parented to its parent.
    internal_tasks: bool = False
    #: Spans for resources a primitive made for itself (a Queue's Event, a
    #: Condition's own Lock); their owner's span shows what matters.
    internal_resources: bool = False


def _context_of(span: Span) -> Context:
    return trace.set_span_in_context(span, Context())


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


class _Task:
    __slots__ = (
        "span",
        "context",
        "spawned",
        "app_parent",
        "coroutine",
        "polls",
        "busy",
        "scheduled",
        "wakes",
        "self_wakes",
        "clones",
        "drops",
        "poll_started",
        "woken_at",
    )

    def __init__(
        self, span: Span | None, context: Context, spawned: int, app_parent: Any, coroutine: str
    ) -> None:
        self.span = span
        self.context = context
        self.spawned = spawned
        self.app_parent = app_parent
        self.coroutine = coroutine
        self.polls = 0
        self.busy = 0
        self.scheduled = 0
        self.wakes = 0
        self.self_wakes = 0
        self.clones = 0
        self.drops = 0
        self.poll_started: int | None = None
        #: The spawn counts as the wake that schedules the first poll.
        self.woken_at: int | None = spawned

    def statistics(self, end: int) -> dict[str, Any]:
        lifetime = max(end - self.spawned, 0)
        return {
            sc.TASK_POLLS: self.polls,
            sc.TASK_BUSY: _seconds(self.busy),
            sc.TASK_SCHEDULED: _seconds(self.scheduled),
            sc.TASK_IDLE: _seconds(lifetime - self.busy - self.scheduled),
            sc.TASK_WAKES: self.wakes,
            sc.TASK_SELF_WAKES: self.self_wakes,
            sc.TASK_WAKER_CLONES: self.clones,
            sc.TASK_WAKER_DROPS: self.drops,
        }


class _Resource:
    __slots__ = ("span", "context", "state")

    def __init__(self, span: Span, state: dict[str, StateValue]) -> None:
        self.span = span
        self.context = _context_of(span)
        self.state = dict(state)


class _Op:
    __slots__ = ("span", "context", "task_id", "resource_id", "polls", "poll_span", "code")

    def __init__(self, span: Span, task_id: int | None, resource_id: int, code: dict[str, Any]) -> None:
        self.span = span
        self.context = _context_of(span)
        self.task_id = task_id
        self.resource_id = resource_id
        self.polls = 0
        self.poll_span: Span | None = None
        self.code = code


class SpanBridge:
    """Maps the record stream onto spans of one tracer."""

    def __init__(self, tracer: trace.Tracer, options: BridgeOptions | None = None) -> None:
        self._tracer = tracer
        self._options = options or BridgeOptions()
        self._tasks: dict[int, _Task] = {}
        self._resources: dict[int, _Resource] = {}
        self._ops: dict[int, _Op] = {}
        #: Span contexts of recently ended tasks, for links made after a task
        #: ended (a scope woken by a task that finished since); bounded.
        self._ended: OrderedDict[int, SpanContext] = OrderedDict()
        self.errors = 0
        self._handlers: dict[type, Callable[[Any], None]] = {
            r.TaskSpawned: self._task_spawned,
            r.TaskNamed: self._task_named,
            r.TaskWoken: self._task_woken,
            r.TaskPollStarted: self._poll_started,
            r.TaskPollEnded: self._poll_ended,
            r.TaskClosed: self._task_closed,
            r.WakerCloned: self._waker_cloned,
            r.WakerDropped: self._waker_dropped,
            r.ResourceCreated: self._resource_created,
            r.ResourceStateUpdated: self._resource_state,
            r.ResourceClosed: self._resource_closed,
            r.AsyncOpCreated: self._op_created,
            r.AsyncOpPollStarted: self._op_poll_started,
            r.PollOp: self._poll_op,
            r.AsyncOpStateUpdated: self._op_state,
            r.AsyncOpClosed: self._op_closed,
        }

    # -- Sink ------------------------------------------------------------------

    def consume(self, records: Sequence[r.Record]) -> None:
        handlers = self._handlers
        for record in records:
            try:
                handlers[type(record)](record)
            except Exception:
                self.errors += 1

    def flush(self, final: bool = False) -> None:
        if final:
            self._end_unfinished(time_ns())

    def shutdown(self) -> None:
        self._end_unfinished(time_ns())

    def open_spans(self) -> int:
        return len(self._tasks) + len(self._resources) + len(self._ops)

    def _end_unfinished(self, now: int) -> None:
        """Spans reach a backend only when they end: at exit, end what is still
        open, marked unfinished, rather than lose it."""
        for op_id in list(self._ops):
            self._end_op(op_id, now, None, unfinished=True)
        for task_id, task in list(self._tasks.items()):
            del self._tasks[task_id]
            if task.span is not None:
                task.span.set_attributes(task.statistics(now))
                task.span.set_attribute(sc.UNFINISHED, True)
                task.span.end(end_time=now)
        for rid in list(self._resources):
            self._end_resource(rid, now, unfinished=True)

    # -- tasks -------------------------------------------------------------------

    def _start(
        self, name: str, parent: Context, start: int, attributes: dict[str, Any], links: Sequence[Link] = ()
    ) -> Span:
        return self._tracer.start_span(
            name, context=parent, attributes=attributes, links=links, start_time=start
        )

    def _task_spawned(self, rec: r.TaskSpawned) -> None:
        spawner = self._tasks.get(rec.parent_id) if rec.parent_id is not None else None
        app = rec.app_parent
        links: list[Link] = []
        if isinstance(app, SpanContext) and (spawner is None or app != spawner.app_parent):
            # Spawned inside an application span (a request, say): the task
            # belongs in that trace; the spawning task is linked.
            parent = trace.set_span_in_context(NonRecordingSpan(app), Context())
            if spawner is not None and spawner.span is not None:
                links.append(Link(spawner.span.get_span_context(), {sc.LINK_RELATION: sc.LINK_SPAWNED_BY}))
        elif spawner is not None:
            parent = spawner.context
        else:
            parent = Context()  # a new trace
        if rec.internal and not self._options.internal_tasks:
            self._tasks[rec.task_id] = _Task(None, parent, rec.ts, app, rec.coroutine)
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
        span = self._start(sc.TASK_SPAN.format(rec.coroutine), parent, rec.ts, attributes, links)
        self._tasks[rec.task_id] = _Task(span, _context_of(span), rec.ts, app, rec.coroutine)

    def _traced(self, task_id: int | None) -> _Task | None:
        """The task's entry if it has a span (internal tasks have none)."""
        task = self._tasks.get(task_id) if task_id is not None else None
        return task if task is not None and task.span is not None else None

    def _task_named(self, rec: r.TaskNamed) -> None:
        task = self._traced(rec.task_id)
        if task is None or task.span is None:
            return
        task.span.set_attribute(sc.TASK_NAME, rec.name)
        if not _DEFAULT_TASK_NAME.match(rec.name):
            task.span.update_name(sc.TASK_SPAN.format(rec.name))

    def _task_woken(self, rec: r.TaskWoken) -> None:
        task = self._traced(rec.task_id)
        if task is None or task.span is None:
            return
        is_self = rec.waker_id == rec.task_id
        task.wakes += 1
        if is_self:
            task.self_wakes += 1
        if rec.cause == WakeCause.FUTURE:
            task.drops += 1  # the wake consumed the registration
        if task.woken_at is None:
            task.woken_at = rec.ts
        attrs: dict[str, Any] = {sc.TASK_ID: rec.task_id, sc.WAKE_CAUSE: rec.cause, sc.WAKE_SELF: is_self}
        if rec.waker_id is not None:
            attrs[sc.WAKER_TASK_ID] = rec.waker_id
        if rec.resource_id is not None:
            attrs[sc.RESOURCE_ID] = rec.resource_id
        if rec.op_id is not None:
            attrs[sc.ASYNC_OP_ID] = rec.op_id
        task.span.add_event(sc.EVENT_WAKER_WAKE, attrs, timestamp=rec.ts)
        op = self._ops.get(rec.op_id) if rec.op_id is not None else None
        if op is not None and rec.waker_id is not None:
            self._link_waker(op, rec.waker_id)

    def _link_waker(self, op: _Op, waker_id: int) -> None:
        """The op was completed by that task's action: say so, and link to it."""
        op.span.set_attribute(sc.WAKER_TASK_ID, waker_id)
        waker = self._traced(waker_id)
        context = waker.span.get_span_context() if waker is not None and waker.span is not None else None
        context = context or self._ended.get(waker_id)
        if context is not None:
            op.span.add_link(context, {sc.LINK_RELATION: sc.LINK_WOKEN_BY})

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
        task.busy += max(rec.ts - task.poll_started, 0)
        task.poll_started = None
        if task.woken_at is not None and task.woken_at < rec.ts:
            # Woken during its own poll (a yield): it waits to be run again
            # only from the end of this poll; before that it was busy.
            task.woken_at = rec.ts

    def _waker_cloned(self, rec: r.WakerCloned) -> None:
        task = self._traced(rec.task_id)
        if task is None or task.span is None:
            return
        task.clones += 1
        attrs: dict[str, Any] = {sc.TASK_ID: rec.task_id}
        if rec.resource_id is not None:
            attrs[sc.RESOURCE_ID] = rec.resource_id
        if rec.op_id is not None:
            attrs[sc.ASYNC_OP_ID] = rec.op_id
        if rec.awaited_task_id is not None:
            attrs[sc.AWAITED_TASK_ID] = rec.awaited_task_id
        task.span.add_event(sc.EVENT_WAKER_CLONE, attrs, timestamp=rec.ts)

    def _waker_dropped(self, rec: r.WakerDropped) -> None:
        task = self._traced(rec.task_id)
        if task is None or task.span is None:
            return
        task.drops += 1
        attrs: dict[str, Any] = {sc.TASK_ID: rec.task_id, sc.WAKER_DROP_REASON: rec.reason}
        if rec.resource_id is not None:
            attrs[sc.RESOURCE_ID] = rec.resource_id
        if rec.op_id is not None:
            attrs[sc.ASYNC_OP_ID] = rec.op_id
        task.span.add_event(sc.EVENT_WAKER_DROP, attrs, timestamp=rec.ts)

    def _task_closed(self, rec: r.TaskClosed) -> None:
        task = self._tasks.pop(rec.task_id, None)
        if task is None or task.span is None:
            return
        span = task.span
        if task.poll_started is not None:  # closed from inside a poll
            task.busy += max(rec.ts - task.poll_started, 0)
        span.set_attributes(task.statistics(rec.ts))
        span.set_attribute(sc.TASK_OUTCOME, rec.outcome)
        _record_error(span, rec.error, rec.ts)
        span.end(end_time=rec.ts)
        self._ended[rec.task_id] = span.get_span_context()
        if len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)

    # -- resources -----------------------------------------------------------------

    def _resource_created(self, rec: r.ResourceCreated) -> None:
        if rec.is_internal and not self._options.internal_resources:
            return
        if rec.parent_resource_id is not None and rec.parent_resource_id in self._resources:
            parent = self._resources[rec.parent_resource_id].context
        elif rec.task_id is not None and rec.task_id in self._tasks:
            parent = self._tasks[rec.task_id].context  # an internal task's is its parent's
        else:
            parent = Context()
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
        span = self._start(sc.RESOURCE_SPAN.format(rec.concrete_type), parent, rec.ts, attributes)
        self._resources[rec.resource_id] = _Resource(span, rec.state)

    def _resource_state(self, rec: r.ResourceStateUpdated) -> None:
        res = self._resources.get(rec.resource_id)
        if res is None:
            return
        res.state[rec.attribute] = _apply(res.state.get(rec.attribute), rec.value, rec.op)
        res.span.add_event(
            sc.EVENT_STATE_UPDATE, _state_event(rec.attribute, rec.value, rec.op, rec.unit), timestamp=rec.ts
        )

    def _resource_closed(self, rec: r.ResourceClosed) -> None:
        self._end_resource(rec.resource_id, rec.ts)

    def _end_resource(self, rid: int, ts: int, unfinished: bool = False) -> None:
        res = self._resources.pop(rid, None)
        if res is None:
            return
        res.span.set_attributes({sc.RESOURCE_STATE_PREFIX + k: v for k, v in res.state.items()})
        if unfinished:
            res.span.set_attribute(sc.UNFINISHED, True)
        res.span.end(end_time=ts)

    # -- async ops -----------------------------------------------------------------

    def _op_created(self, rec: r.AsyncOpCreated) -> None:
        task = self._traced(rec.task_id)
        res = self._resources.get(rec.resource_id)
        code = _code_attributes(rec.location)
        attributes: dict[str, Any] = {
            sc.ASYNC_OP_ID: rec.op_id,
            sc.ASYNC_OP_SOURCE: rec.source,
            sc.RESOURCE_ID: rec.resource_id,
            **code,
        }
        if rec.task_id is not None:
            attributes[sc.TASK_ID] = rec.task_id
        links: list[Link] = []
        by_resource = self._options.op_parent == "resource"
        first, second = (res, task) if by_resource else (task, res)
        if first is not None:
            parent = first.context
        elif second is not None:
            parent = second.context
        else:
            parent = Context()
        if first is not None and second is not None and second.span is not None:
            relation = sc.LINK_AWAITED_BY if by_resource else sc.LINK_RESOURCE
            links.append(Link(second.span.get_span_context(), {sc.LINK_RELATION: relation}))
        span = self._start(sc.ASYNC_OP_SPAN.format(rec.source), parent, rec.ts, attributes, links)
        self._ops[rec.op_id] = _Op(span, rec.task_id, rec.resource_id, code)

    def _op_poll_started(self, rec: r.AsyncOpPollStarted) -> None:
        op = self._ops.get(rec.op_id)
        if op is None:
            return
        op.polls += 1
        if self._options.op_poll_spans:
            attributes = {sc.ASYNC_OP_ID: rec.op_id, **op.code}
            if rec.task_id is not None:
                attributes[sc.TASK_ID] = rec.task_id
            op.poll_span = self._start(sc.POLL_SPAN, op.context, rec.ts, attributes)

    def _poll_op(self, rec: r.PollOp) -> None:
        op = self._ops.get(rec.op_id)
        if op is None:
            return
        op.span.add_event(
            sc.EVENT_POLL_OP,
            {sc.EVENT_OP_NAME: rec.op_name, sc.EVENT_IS_READY: rec.is_ready},
            timestamp=rec.ts,
        )
        if op.poll_span is not None:
            op.poll_span.set_attribute(sc.POLL_IS_READY, rec.is_ready)
            op.poll_span.end(end_time=rec.ts)
            op.poll_span = None

    def _op_state(self, rec: r.AsyncOpStateUpdated) -> None:
        op = self._ops.get(rec.op_id)
        if op is None:
            return
        op.span.add_event(
            sc.EVENT_STATE_UPDATE, _state_event(rec.attribute, rec.value, rec.op, rec.unit), timestamp=rec.ts
        )
        op.span.set_attribute(sc.ASYNC_OP_STATE_PREFIX + rec.attribute, rec.value)

    def _op_closed(self, rec: r.AsyncOpClosed) -> None:
        op = self._ops.get(rec.op_id)
        if op is not None and rec.waker_id is not None:
            self._link_waker(op, rec.waker_id)
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
        if op.poll_span is not None:
            op.poll_span.end(end_time=ts)
        op.span.set_attribute(sc.ASYNC_OP_POLLS, op.polls)
        if outcome is not None:
            op.span.set_attribute(sc.ASYNC_OP_OUTCOME, outcome)
        if unfinished:
            op.span.set_attribute(sc.UNFINISHED, True)
        _record_error(op.span, error, ts)
        op.span.end(end_time=ts)


def _record_error(span: Span, error: r.ErrorInfo | None, ts: int) -> None:
    """OpenTelemetry's standard ``exception`` event and an error status."""
    if error is None:
        return
    span.add_event(
        "exception",
        {
            "exception.type": error.type,
            "exception.message": error.message,
            "exception.stacktrace": error.stacktrace,
        },
        timestamp=ts,
    )
    span.set_status(Status(StatusCode.ERROR, f"{error.type}: {error.message}"))
