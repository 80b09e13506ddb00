"""A span that exists only when it has something to show, in windows.

Records describe every task, resource and op; not every one deserves a span
(DESIGN.md §4: a span costs more than the work of most tasks). An entity keeps
what its span would carry (name, start time, attributes, links, events) and
becomes a span only when the policy asks for it: then it is started with its
original start time, under its parent (made a span first, if need be), and
everything it kept is replayed with the original timestamps.

A span reaches a backend only when it ends, and the SDK keeps a bounded number
of events per span, dropping the oldest silently. So a long-lived entity is
exported in windows: when a window reaches its duration or its event budget,
it ends, and a continuation span with the same name and attributes takes
over, linked to the window before. Children made later hang under the current
window. Nothing is dropped: whatever the budget would not fit goes to the
next window.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span

from . import semconv as sc


class Windows:
    """How long a window may last and how many events it may hold."""

    __slots__ = ("duration_ns", "events")

    def __init__(self, duration_ns: int, events: int) -> None:
        self.duration_ns = duration_ns
        self.events = events


class SpanEntity:
    """One task, resource or op: a span on demand. The bridge's task,
    resource and op are subclasses, each its own entity.

    A program may have tens of thousands of them alive at once, most never
    shown, and every object they hold is one more for the cyclic garbage
    collector to walk at each full collection: so the links and events kept
    are lists made only when there is one to keep."""

    __slots__ = (
        "_attributes",
        "_ending",
        "_events",
        "_links",
        "_name",
        "context",
        "ended",
        "event_count",
        "muted",
        "parent",
        "parent_context",
        "span",
        "start",
        "window",
        "window_start",
    )

    def __init__(
        self,
        name: str,
        start: int,
        attributes: dict[str, Any],
        parent: SpanEntity | Context | None,
    ) -> None:
        self._name = name
        self.start = start
        self._attributes = attributes
        self._links: list[Link] | None = None
        #: Events kept flat, ``(name, ts, key, value, key, value ...)``: a
        #: tuple of plain values is one the garbage collector stops tracking,
        #: one that holds a dict is walked at every full collection.
        self._events: list[tuple[Any, ...]] | None = None
        #: The parent entity, or a ready context (an application span, or an
        #: empty Context for a new trace).
        self.parent = parent
        self.parent_context: Context | None = None
        self.span: Span | None = None
        self.context: Context | None = None
        self.window = 0
        self.window_start = start
        self.event_count = 0
        self.muted = False
        self.ended = False
        #: How it ended while not a span: its span, if made later, ends so.
        self._ending: tuple[int, dict[str, Any] | None] | None = None

    @property
    def shown(self) -> bool:
        return self.span is not None

    # -- what the span will carry --------------------------------------------------

    def rename(self, name: str) -> None:
        self._name = name
        if self.span is not None:
            self.span.update_name(name)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self._attributes.update(attributes)
        if self.span is not None:
            self.span.set_attributes(attributes)

    def add_link(self, context: trace.SpanContext, attributes: dict[str, Any]) -> None:
        if self.span is None:
            if self._links is None:
                self._links = []
            self._links.append(Link(context, attributes))
        else:
            self.span.add_link(context, attributes)

    def add_event(
        self, name: str, attributes: dict[str, Any], ts: int, tracer: Any, windows: Windows
    ) -> None:
        if self.span is None:
            if self._events is None:
                self._events = []
            self._events.append((name, ts, *chain.from_iterable(attributes.items())))
            return
        if self.event_count >= windows.events:
            self.roll(ts, tracer)
        assert self.span is not None
        self.span.add_event(name, attributes, timestamp=ts)
        self.event_count += 1

    # -- becoming a span --------------------------------------------------------------

    def materialize(self, tracer: Any, windows: Windows) -> Context | None:
        """Start the span (its parent first) and replay what was kept; the
        context children should use, or None if the trace is sampled out."""
        if self.muted:
            return None
        if self.span is None:
            parent = self.parent
            if isinstance(parent, SpanEntity):
                parent_context = parent.materialize(tracer, windows)
                if parent_context is None:
                    self.muted = True
                    return None
            else:
                parent_context = parent if parent is not None else Context()
            self.parent_context = parent_context
            links, self._links = self._links, None
            self._open(tracer, self.start, links or [])
            events, self._events = self._events, None
            if self.span is None or not self.span.is_recording():
                self.muted = True
                return None
            for event in events or ():
                attributes = dict(zip(event[2::2], event[3::2], strict=True))
                self.add_event(event[0], attributes, event[1], tracer, windows)
            if self._ending is not None:  # made a span after it ended
                (ts, attributes), self._ending = self._ending, None
                self.end(ts, attributes)
        return self.context

    def adopt(self, span: Span) -> None:
        """Take a span already started for this entity (a root task's, started
        at spawn to ask the sampler): it carries what was kept so far."""
        self.span = span
        self.parent_context = Context()
        self.context = trace.set_span_in_context(span, Context())
        span.set_attributes(self._attributes)
        span.update_name(self._name)

    def _open(self, tracer: Any, start: int, links: list[Link]) -> None:
        attributes = dict(self._attributes)
        if self.window:
            attributes[sc.WINDOW_INDEX] = self.window
        assert self.parent_context is not None
        self.span = tracer.start_span(
            self._name, context=self.parent_context, attributes=attributes, links=links, start_time=start
        )
        self.context = trace.set_span_in_context(self.span, Context())
        self.window_start = start
        self.event_count = 0

    def roll(self, ts: int, tracer: Any) -> None:
        """End the current window at ``ts``; a continuation takes over."""
        if self.span is None:
            return
        previous = self.span
        described = self.describe(ts)
        if described:
            previous.set_attributes(described)
        previous.set_attributes({sc.WINDOW_INDEX: self.window, sc.WINDOW_LAST: False})
        previous.end(end_time=ts)
        self.window += 1
        link = Link(previous.get_span_context(), {sc.LINK_RELATION: sc.LINK_PREVIOUS_WINDOW})
        self._open(tracer, ts, [link])

    def describe(self, ts: int) -> dict[str, Any] | None:
        """What the window ending at ``ts`` says of the entity so far
        (statistics, state): for the subclasses to say."""
        return None

    def forget_events(self) -> None:
        """Drop what was kept for a span that was not made (an entity ended
        hidden is kept a while, for late links, but not its events)."""
        self._events = None

    def due(self, now: int, windows: Windows) -> bool:
        """Whether the current window has lasted long enough to end."""
        return self.span is not None and not self.ended and now - self.window_start >= windows.duration_ns

    def end(self, ts: int, attributes: dict[str, Any] | None = None) -> None:
        """End the span with its final attributes; if it is not one, remember
        how it ended, for a span made later (a late link to it)."""
        self.ended = True
        if self.span is None:
            self._ending = (ts, attributes)
            return
        if attributes:
            self.span.set_attributes(attributes)
        if self.window:
            self.span.set_attributes({sc.WINDOW_INDEX: self.window, sc.WINDOW_LAST: True})
        self.span.end(end_time=max(ts, self.window_start))
        # Ended entities are kept a while for links made late; all they need
        # then is the span context, not the span with its events and links.
        self.span = NonRecordingSpan(self.span.get_span_context())
        self.context = trace.set_span_in_context(self.span, Context())
        self.parent = self.parent_context = None
        self._links = self._events = None
