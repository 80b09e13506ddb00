"""The bridge: shown entities become OpenTelemetry spans, on the hand-off's thread.

The loop decides what is shown (``showing``); the bridge gets each shown
entity, by reference, whenever it has something new for its span, and brings
the span up to date with it: starts it (its parent first), adds the events the
loop kept since, ends it with its statistics. Everything it reads was written
on the loop; it writes only its own bookkeeping (``entity.export``) and takes
events from the front of the entity's list.

Every span is started with an explicit parent context built from the entities
alone (``Context()`` plus the parent span, or an empty ``Context()`` for a new
trace), never from the current context: the bridge runs on its own thread,
where the current context means nothing. Start and end times and event
timestamps are the loop's. Relations other than the parent become links.

A span reaches a backend only when it ends, and the SDK keeps a bounded number
of events per span, dropping the oldest silently. So a long-lived entity is
exported in windows: when a window reaches its duration or its event room, it
ends with the statistics so far, and a continuation span with the same name
and attributes takes over, linked to the window before, in the same trace (a
root's continuations are children of its first window). A resource's window
opens with its whole state as a ``state_update`` override, as Tokio opens a
resource's span, so each exported span alone replays to the real state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, Status, StatusCode

from ..model import Entity, Event, Fate, StateValue
from . import attributes as at
from . import semconv as sc

#: Names asyncio gives when the user gave none: "Task-7", and on CPython 3.13.0
#: "None" for tasks made by a task factory (a CPython bug, fixed later). The
#: span is then named after the coroutine; the attribute keeps the real name.
_DEFAULT_TASK_NAME = re.compile(r"(Task-\d+|None)\Z")

#: Window contexts kept per long-lived entity, for children shown late: a
#: child is parented to the window its start falls in, if still kept.
_WINDOWS_KEPT = 64


@dataclass(frozen=True)
class BridgeOptions:
    """How shown entities are shaped into spans."""

    #: A ``poll`` span per poll of an async op (each poll that leaves an op
    #: pending again is a ``poll_op`` event in any case).
    op_poll_spans: bool = False
    #: A ``poll`` span per poll of a task (detail=all).
    task_poll_spans: bool = False
    #: A window of a long-lived span ends after this long...
    window_ns: int = 10_000_000_000
    #: ... or with this many events (below the SDK's limit of 128).
    window_events: int = 120


class _Export:
    """The bridge's bookkeeping of an entity that is a span."""

    __slots__ = (
        "closed",
        "context",
        "event_count",
        "events_folded",
        "follows_owner",
        "parent_context",
        "span",
        "state",
        "window",
        "window_start",
        "windows",
        "wakers_linked",
    )

    def __init__(self, span: Span, parent_context: Context, start: int) -> None:
        self.span = span
        self.parent_context = parent_context
        #: Its parent is a window of its owner's (not an application span, not
        #: none): its later windows go under the owner's window of their time.
        self.follows_owner = False
        self.context = trace.set_span_in_context(span, Context())
        self.window = 0
        self.window_start = start
        self.event_count = 0
        #: The windows so far (start, context), the last _WINDOWS_KEPT of them.
        self.windows: list[tuple[int, Context]] = [(start, self.context)]
        self.closed = False
        #: A resource's state, replayed from the events exported so far.
        self.state: dict[str, StateValue] | None = None
        #: Wakers already linked (an op's ``woken_by`` links).
        self.wakers_linked = 0
        #: Events not kept, as last said on a window.
        self.events_folded = 0


class SpanBridge:
    """Makes, updates and ends the spans of shown entities."""

    def __init__(
        self,
        tracer: trace.Tracer,
        options: BridgeOptions | None = None,
        prestarted: dict[int, Any] | None = None,
        drops: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self._tracer = tracer
        self._options = options = options or BridgeOptions()
        #: Root-task spans the sampler was asked with at spawn (see ``sampling``).
        self._prestarted = prestarted if prestarted is not None else {}
        #: Entities the hand-off could not take since last asked, by kind.
        self._drops = drops or dict
        #: Spans the export dropped since last asked: said on the next span.
        self.dropped_spans: Callable[[], int] = lambda: 0
        #: Open spans (started, not ended), by entity.
        self._open: dict[int, Entity] = {}
        self.errors = 0

    # -- the hand-off's calls ------------------------------------------------------------

    def sync(self, entity: Entity) -> None:
        """Bring the entity's span up to date with it."""
        if entity.fate != Fate.SHOWN:
            return
        ex = entity.export
        if ex is None:
            ex = self._materialize(entity)
            if ex is None:
                return
        if ex.closed:
            return
        self._take_events(entity, ex)
        if entity.ended:
            self._close(entity, ex)

    def tick(self, now: int) -> None:
        """End the windows that have lasted long enough (with the events
        kept so far), so that a backend sees long-lived entities while they
        live."""
        window_ns = self._options.window_ns
        # Owners first (an owner starts before what it made): a window that
        # rolls with its owner's continues under the owner's new one.
        for entity in sorted(self._open.values(), key=_by_start):
            ex = entity.export
            if ex is not None and not ex.closed and now - ex.window_start >= window_ns:
                self._take_events(entity, ex)
                if not ex.closed:
                    self._roll(entity, ex, now)

    def flush(self, final: bool = False) -> None:
        pass

    def shutdown(self) -> None:
        """Spans reach a backend only when they end: end whatever is still
        open, marked unfinished, rather than lose it."""
        now = time_ns()
        for entity in list(self._open.values()):
            ex = entity.export
            if ex is not None and not ex.closed:
                self._take_events(entity, ex)
                entity.unfinished = True
                self._close(entity, ex, now)

    def open_spans(self) -> int:
        return len(self._open)

    # -- becoming a span -------------------------------------------------------------------

    def _materialize(self, entity: Entity) -> _Export | None:
        """Start the entity's span, under its parent (made a span first)."""
        kind = entity.KIND
        links: list[Link] = []
        if kind == "task":
            parent = self._task_parent(entity, links)
        elif kind == "op" and entity.app_parent is not None:  # type: ignore[attr-defined]
            parent = self._app_op_parent(entity, links)
        else:
            parent = self._context_at(entity.owner(), entity.start)
            if kind == "op":
                self._op_links(entity, links)
        if parent is None:
            entity.export = _Muted
            return None
        prestarted = self._prestarted.pop(entity.id, None) if kind == "task" else None
        name, attributes = self._identity(entity)
        if prestarted is not None:
            span = prestarted
            span.update_name(name)
            span.set_attributes(attributes)
            parent = Context()
        else:
            span = self._tracer.start_span(
                name, context=parent, attributes=attributes, links=links, start_time=entity.start
            )
        if not span.is_recording():
            entity.export = _Muted
            return None
        ex = entity.export = _Export(span, parent, entity.start)
        ex.follows_owner = self._is_owner_window(entity.owner(), parent)
        self._open[id(entity)] = entity
        if kind == "resource":
            ex.state = dict(entity.initial)  # type: ignore[attr-defined]
            self._open_state(entity, ex, entity.start)
        return ex

    def _identity(self, entity: Entity) -> tuple[str, dict[str, Any]]:
        kind = entity.KIND
        if kind == "task":
            return _task_span_name(entity), at.task_identity(entity)  # type: ignore[arg-type]
        if kind == "resource":
            return sc.RESOURCE_SPAN.format(entity.label()), at.resource_identity(entity)  # type: ignore[arg-type]
        return sc.ASYNC_OP_SPAN.format(entity.label()), at.op_identity(entity)  # type: ignore[arg-type]

    def _task_parent(self, st: Any, links: list[Link]) -> Context | None:
        """Spawned inside an application span (a request, say) that is not
        its spawner's: the task belongs in that trace, the spawner is linked.
        Otherwise its spawner's span, or a new trace."""
        owner = st.owner()
        app = st.app_parent
        if isinstance(app, SpanContext) and (owner is None or app != owner.app_parent):
            if owner is not None:
                context = self._span_context(owner)
                if context is not None:
                    links.append(Link(context, {sc.LINK_RELATION: sc.LINK_SPAWNED_BY}))
            return trace.set_span_in_context(NonRecordingSpan(app), Context())
        return self._context_at(owner, st.start)

    def _app_op_parent(self, op: Any, links: list[Link]) -> Context | None:
        """An op begun inside an application span of another trace than its
        task's (a request's, in a handler task the framework made before the
        request began) is that span's child; its task is linked. A sampled-out
        task's op stays unrecorded."""
        if self._context_at(op.owner(), op.start) is None:
            return None
        if op.task is not None:
            context = self._span_context(op.task)
            if context is not None:
                links.append(Link(context, {sc.LINK_RELATION: sc.LINK_AWAITED_BY}))
        self._op_links(op, links)
        return trace.set_span_in_context(NonRecordingSpan(op.app_parent), Context())

    def _op_links(self, op: Any, links: list[Link]) -> None:
        """An op links to its resource (or, parented by the resource, to its
        task), and a join to the task it waits for."""
        if op.parent is op.resource and op.task is not None:
            context = self._span_context(op.task)
            if context is not None:
                links.append(Link(context, {sc.LINK_RELATION: sc.LINK_AWAITED_BY}))
        else:
            target = op.awaited if op.awaited is not None else op.resource
            if target is not None and target.fate == Fate.SHOWN:
                context = self._span_context(target)
                if context is not None:
                    links.append(Link(context, {sc.LINK_RELATION: sc.LINK_RESOURCE}))
        for holder in op.holders:
            context = self._span_context(holder) if holder.fate == Fate.SHOWN else None
            if context is not None:
                links.append(Link(context, {sc.LINK_RELATION: sc.LINK_HELD_BY}))

    def _context_at(self, owner: Entity | None, ts: int) -> Context | None:
        """The context of the owner's window that ``ts`` falls in (the
        owner made a span first); an empty context for a root; None when the
        owner is not recorded (sampled out)."""
        if owner is None:
            return Context()
        ex = owner.export
        if ex is None:
            if owner.fate != Fate.SHOWN:
                return Context()  # (the loop shows owners first: not expected)
            ex = self._materialize_chain(owner)
        if ex is None or ex is _Muted:
            return None
        return self._window_at(ex, ts)

    def _materialize_chain(self, entity: Entity) -> _Export | None:
        """Start the span of an entity whose owners may have none yet, the
        outermost first, by a loop: a chain of thousands of tasks each
        awaiting the next needs no recursion as deep."""
        chain = []
        current: Entity | None = entity
        while current is not None and current.export is None and current.fate == Fate.SHOWN:
            chain.append(current)
            current = current.owner()
        for each in reversed(chain):
            if each.export is None:
                self._materialize(each)
        return entity.export  # type: ignore[no-any-return]

    def _span_context(self, entity: Entity) -> SpanContext | None:
        context = self._context_at(entity, entity.start)
        if context is None:
            return None
        span = trace.get_current_span(context)
        ctx = span.get_span_context()
        return ctx if ctx.is_valid else None

    # -- events and windows ------------------------------------------------------------------

    def _take_events(self, entity: Entity, ex: _Export) -> None:
        """Add the events the loop kept since the last visit (a prefix of
        its list: the loop only appends, so nothing is lost meanwhile)."""
        events = entity.events
        if not events:
            return
        n = len(events)
        batch = events[:n]
        del events[:n]
        room = self._options.window_events
        for event in batch:
            ts = event[1]
            if ex.event_count >= room:
                self._roll(entity, ex, ts)
            name, attributes = at.span_event(entity, event)
            ex.span.add_event(name, attributes, timestamp=ts)
            ex.event_count += 1
            kind = event[0]
            if kind == Event.STATE and ex.state is not None:
                at.replay(ex.state, event[2], event[3], event[4])
            elif kind == Event.ERROR:
                error = event[2]
                ex.span.set_status(Status(StatusCode.ERROR, f"{error.type}: {error.message}"))
            elif kind == Event.LINT and event[3] == "error":
                ex.span.set_status(Status(StatusCode.ERROR, f"{event[2]}: {event[4]}"))

    def _describe(self, entity: Entity, ex: _Export, ts: int) -> dict[str, Any]:
        """What a window (or the span) ending at ``ts`` says of the entity."""
        kind = entity.KIND
        if kind == "task":
            attributes = at.task_statistics(entity, ts)  # type: ignore[arg-type]
        elif kind == "resource":
            if entity.events_folded and not entity.ended:
                ex.state = dict(entity.last)  # type: ignore[attr-defined]
            state = entity.last if entity.ended else ex.state  # type: ignore[attr-defined]
            attributes = at.resource_statistics(state or {}, entity)  # type: ignore[arg-type]
        else:
            attributes = at.op_statistics(entity)  # type: ignore[arg-type]
        if entity.events_folded:
            attributes[sc.EVENTS_FOLDED] = entity.events_folded
        return attributes

    def _roll(self, entity: Entity, ex: _Export, ts: int) -> None:
        """End the current window at ``ts``; a continuation takes over."""
        previous = ex.span
        previous.set_attributes(self._describe(entity, ex, ts))
        previous.set_attributes({sc.WINDOW_INDEX: ex.window, sc.WINDOW_LAST: False})
        previous.end(end_time=max(ts, ex.window_start))
        ex.window += 1
        link = Link(previous.get_span_context(), {sc.LINK_RELATION: sc.LINK_PREVIOUS_WINDOW})
        parent = self._continuation_parent(entity, ex, ts)
        name, attributes = self._identity(entity)
        attributes[sc.WINDOW_INDEX] = ex.window
        ex.span = self._tracer.start_span(
            name, context=parent, attributes=attributes, links=[link], start_time=ts
        )
        ex.context = trace.set_span_in_context(ex.span, Context())
        ex.windows.append((ts, ex.context))
        if len(ex.windows) > _WINDOWS_KEPT:
            del ex.windows[1]  # the first stays: a root's continuations hang under it
        ex.window_start = ts
        ex.event_count = 0
        if ex.state is not None:
            self._open_state(entity, ex, ts)

    def _continuation_parent(self, entity: Entity, ex: _Export, ts: int) -> Context:
        """Where a window that starts at ``ts`` goes: under the window of
        its owner (or, once the owner has ended, of the nearest owner above
        that still lives) that is current then, so that it starts inside its
        parent; under the same application span; a root's, under its own
        first window (one trace)."""
        if ex.follows_owner:
            owner = entity.owner()
            while owner is not None:
                oex = owner.export
                if oex is None or oex is _Muted:
                    break
                if not oex.closed:
                    return self._window_at(oex, ts)
                owner = owner.owner()
        return ex.parent_context if _has_span(ex.parent_context) else ex.windows[0][1]

    @staticmethod
    def _window_at(ex: _Export, ts: int) -> Context:
        for start, context in reversed(ex.windows):
            if start <= ts:
                return context
        return ex.windows[0][1]

    @staticmethod
    def _is_owner_window(owner: Entity | None, parent: Context) -> bool:
        oex = owner.export if owner is not None else None
        if oex is None or oex is _Muted:
            return False
        return any(parent is context for _, context in oex.windows)

    def _open_state(self, entity: Entity, ex: _Export, ts: int) -> None:
        """A resource's window opens with its whole state (Tokio's initial
        ``state_update``)."""
        if ex.state:
            units = entity.family.units  # type: ignore[attr-defined]
            ex.span.add_event(sc.EVENT_STATE_UPDATE, at.state_override(ex.state, units), timestamp=ts)
            ex.event_count += 1

    # -- ending --------------------------------------------------------------------------------

    def _close(self, entity: Entity, ex: _Export, ts: int | None = None) -> None:
        end = entity.ended if ts is None else ts
        span = ex.span
        attributes = self._describe(entity, ex, end)
        kind = entity.KIND
        if kind == "task":
            outcome = entity.outcome  # type: ignore[attr-defined]
            if outcome:
                attributes[sc.TASK_OUTCOME] = outcome
            span.update_name(_task_span_name(entity))
            if self._options.task_poll_spans:
                self._poll_spans(entity, ex, getattr(entity, "poll_log", None), {sc.TASK_ID: entity.id})
        elif kind == "op":
            self._link_wakers(entity, ex)
            if self._options.op_poll_spans:
                extra = {sc.ASYNC_OP_ID: entity.id, **at.code_attributes(entity.location)}  # type: ignore[attr-defined]
                self._poll_spans(entity, ex, entity.poll_log, extra)  # type: ignore[attr-defined]
        if entity.unfinished:
            attributes[sc.UNFINISHED] = True
        attributes.update(self._drop_counts())
        span.set_attributes(attributes)
        if ex.window:
            span.set_attributes({sc.WINDOW_INDEX: ex.window, sc.WINDOW_LAST: True})
        span.end(end_time=max(end, ex.window_start))
        ex.closed = True
        # Ended entities are kept as long as something names them; all they
        # need then is the span context, not the span with its events.
        ex.span = NonRecordingSpan(span.get_span_context())
        self._open.pop(id(entity), None)

    def _drop_counts(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        dropped = self.dropped_spans()
        if dropped:
            attributes[sc.DROPPED_SPANS] = dropped
        for kind, n in self._drops().items():
            attributes[sc.DROPPED_PREFIX + kind] = n
        return attributes

    def _link_wakers(self, op: Any, ex: _Export) -> None:
        wakers = op.wakers
        if not wakers:
            return
        for waker in list(wakers)[ex.wakers_linked :]:
            if waker.fate == Fate.SHOWN:
                context = self._span_context(waker)
                if context is not None:
                    ex.span.add_link(context, {sc.LINK_RELATION: sc.LINK_WOKEN_BY})
        ex.wakers_linked = len(wakers)

    def _poll_spans(
        self, entity: Entity, ex: _Export, log: list[tuple[int, int, bool]] | None, extra: dict[str, Any]
    ) -> None:
        for start, end, ready in list(log or ()):
            attributes = dict(extra)
            if entity.KIND == "op":
                attributes[sc.POLL_IS_READY] = ready
                task = entity.task  # type: ignore[attr-defined]
                if task is not None:
                    attributes[sc.TASK_ID] = task.id
            poll = self._tracer.start_span(
                sc.POLL_SPAN, context=ex.context, attributes=attributes, start_time=start
            )
            poll.end(end_time=end)


class _MutedExport:
    """Stands for the span of an entity whose trace is sampled out."""

    closed = True


#: The one muted export (entity.export is it: nothing to do for them).
_Muted: Any = _MutedExport()


def _by_start(entity: Entity) -> int:
    return entity.start


def _has_span(context: Context) -> bool:
    return trace.get_current_span(context).get_span_context().is_valid


def _task_span_name(st: Any) -> str:
    name = st.name
    if name is not None and not _DEFAULT_TASK_NAME.match(name):
        return sc.TASK_SPAN.format(name)
    return sc.TASK_SPAN.format(st.coroutine)
