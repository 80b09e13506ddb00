"""The console view: the default exporter, needing no server.

It keeps the spans it is given and, when the provider shuts down, prints one
indented tree per trace on stderr: tasks, resources, async ops and polls with
their durations and statistics, state updates, and who woke whom. Memory is
bounded: past ``max_spans`` spans are counted, not kept.
"""

from __future__ import annotations

import os
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, Status, StatusCode

from ..bridge import semconv as sc
from ..diagnostics.lints import Lint


def use_color(stream: TextIO) -> bool:
    """Color on a terminal, unless NO_COLOR says otherwise (FORCE_COLOR forces)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Style:
    CODES = {
        "task": "36",
        "resource": "35",
        "async_op": "33",
        "poll": "2",
        "dim": "2",
        "error": "31",
        "bold": "1",
    }

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, kind: str, text: str) -> str:
        if not self.color or kind not in self.CODES:
            return text
        return f"\x1b[{self.CODES[kind]}m{text}\x1b[0m"


def _ms(ns: int) -> str:
    ms = ns / 1e6
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    return f"{ms:.3f}ms" if ms < 1 else f"{ms:.1f}ms"


def _value(v: Any, unit: Any = None) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    text = f"{v:.3f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)
    return f"{text}{unit}" if unit else text


def _duration(seconds: Any) -> str:
    return _ms(int(float(seconds or 0.0) * 1e9))


class ConsoleTreeExporter(SpanExporter):
    """Collects spans; renders them as trees when flushed (``flush()``: what
    was recorded so far) and on shutdown (the rest)."""

    def __init__(
        self, stream: TextIO | None = None, max_spans: int = 10000, color: bool | None = None
    ) -> None:
        self._stream = stream
        self._max = max_spans
        self._color = color
        self._spans: list[ReadableSpan] = []
        self.omitted = 0
        self._done = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        room = self._max - len(self._spans)
        self._spans.extend(spans[: max(room, 0)])
        self.omitted += max(len(spans) - max(room, 0), 0)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._print()
        return True

    def shutdown(self) -> None:
        if self._done:
            return
        self._done = True
        self._print()

    def _print(self) -> None:
        """Render what has come since the last print (each span once)."""
        spans, omitted = self._spans, self.omitted
        if not spans and not omitted:
            return
        self._spans, self.omitted = [], 0
        stream = self._stream or sys.stderr
        color = use_color(stream) if self._color is None else self._color
        try:
            text = render(spans, _Style(color), omitted)
        except Exception as exc:  # a bug of ours: said, never raised into the exit
            failure = f"{type(exc).__name__}: {exc}"
            text = f"otel-asyncres: the console view failed ({failure}); {len(spans)} spans not shown\n"
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed at exit: nothing left to show it on


def render(spans: Sequence[ReadableSpan], style: Any = None, omitted: int = 0) -> str:
    """The text of the console view for these spans."""
    style = style or _Style(False)
    traces: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        if span.context is not None:
            traces[span.context.trace_id].append(span)
    out: list[str] = []
    for trace_id, members in sorted(traces.items(), key=lambda kv: min(s.start_time or 0 for s in kv[1])):
        out.extend(_render_trace(trace_id, members, style))
    out.extend(_diagnostics_summary(spans, style))
    if omitted:
        out.append(f"... {omitted} more spans not shown (console view keeps the first {len(spans)})")
    return "\n".join(out) + ("\n" if out else "")


def _diagnostics_summary(spans: Sequence[ReadableSpan], style: Any) -> list[str]:
    """Every lint found, one line each, after the trees: what to look at first."""
    found = [
        (event.timestamp or 0, event.name, span, dict(event.attributes or {}))
        for span in spans
        for event in span.events
        if event.name in Lint.ALL
    ]
    if not found:
        return []
    counts = Counter(name for _, name, _, _ in found)
    lines = [style("bold", "diagnostics: ") + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))]
    # One line per finding: a deadlock's event is on every task of its cycle.
    findings: dict[tuple[str, Any, Any], list[str]] = {}
    for _, name, span, attrs in sorted(found, key=lambda f: f[0]):
        task = dict(span.attributes or {}).get(sc.TASK_ID)
        key = (name, attrs.get(sc.LINT_MESSAGE), attrs.get(sc.LINT_SEVERITY))
        findings.setdefault(key, []).append(f"{span.name} #{task}")
    for (name, message, severity), tasks in findings.items():
        shown = style("error" if severity == "error" else "bold", name)
        lines.append(f"  {shown}  {', '.join(dict.fromkeys(tasks))}: {message}")
    lines.append("")
    return lines


@dataclass
class _Windows:
    """The windows of one long-lived entity, shown as one node: from the
    first's start to the last's end, with every window's events, the last
    window's statistics (they count from the entity's start) and the
    children of all of them."""

    name: str
    context: SpanContext
    parent: SpanContext | None
    attributes: dict[str, Any]
    events: list[Any]
    start_time: int
    end_time: int
    status: Status
    count: int


def _entity_key(span: ReadableSpan) -> tuple[str, Any] | None:
    kind = span.name.split(" ", 1)[0]
    key = {"task": sc.TASK_ID, "resource": sc.RESOURCE_ID, "async_op": sc.ASYNC_OP_ID}.get(kind)
    attrs = span.attributes or {}
    return (kind, attrs[key]) if key is not None and key in attrs else None


def _merge_windows(spans: list[ReadableSpan]) -> tuple[list[Any], dict[int, int]]:
    """Each entity once: its windows merged. Also the span id of each window
    to the id of the node that stands for it."""
    groups: dict[Any, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        groups[_entity_key(span) or span.context.span_id].append(span)
    nodes: list[Any] = []
    alias: dict[int, int] = {}
    for group in groups.values():
        if len(group) == 1:
            nodes.append(group[0])
            continue
        group.sort(key=lambda s: s.start_time or 0)
        first, last = group[0], group[-1]
        for window in group:
            alias[window.context.span_id] = first.context.span_id
        attributes = {k: v for k, v in (last.attributes or {}).items() if not k.startswith(sc.WINDOW_PREFIX)}
        failed = [w.status for w in group if w.status.status_code is StatusCode.ERROR]
        nodes.append(
            _Windows(
                name=last.name,
                context=first.context,
                parent=first.parent,
                attributes=attributes,
                events=[event for window in group for event in window.events],
                start_time=first.start_time or 0,
                end_time=max(w.end_time or 0 for w in group),
                status=failed[-1] if failed else last.status,
                count=len(group),
            )
        )
    return nodes, alias


def _render_trace(trace_id: int, spans: list[ReadableSpan], style: Any) -> list[str]:
    nodes, alias = _merge_windows(spans)
    ids = {s.context.span_id for s in nodes if s.context is not None}
    children: dict[int | None, list[Any]] = defaultdict(list)
    for s in nodes:
        parent = alias.get(s.parent.span_id, s.parent.span_id) if s.parent is not None else None
        children[parent if parent in ids else None].append(s)
    for kids in children.values():
        kids.sort(key=lambda s: (s.start_time or 0, s.context.span_id if s.context else 0))
    start = min(s.start_time or 0 for s in spans)
    end = max(s.end_time or 0 for s in spans)
    labels = {
        s.attributes[sc.TASK_ID]: s.name[len("task ") :]
        for s in spans
        if s.attributes and s.name.startswith("task ") and sc.TASK_ID in s.attributes
    }
    lines = [
        style("bold", f"trace {trace_id:032x}") + style("dim", f"  {len(spans)} spans, {_ms(end - start)}")
    ]
    _render_tree(children, lines, start, labels, style)
    lines.append("")
    return lines


#: Tree levels indented; deeper ones (a chain of tasks each awaiting the
#: next) keep this indentation and say their depth instead.
_MAX_INDENT = 32


def _render_tree(
    children: dict[int | None, list[ReadableSpan]],
    lines: list[str],
    t0: int,
    labels: dict[Any, str],
    style: Any,
) -> None:
    """Every span under its parent, depth first, by a loop over a stack of
    its own: a chain of thousands of tasks is as printable as a short one."""
    roots = children[None]
    stack = [(root, "", i == len(roots) - 1, 0) for i, root in enumerate(roots)][::-1]
    while stack:
        span, prefix, last, depth = stack.pop()
        branch = "└─ " if last else "├─ "
        deep = f"[depth {depth}] " if depth >= _MAX_INDENT else ""
        lines.append(prefix + branch + deep + _headline(span, labels, style))
        inner = prefix + ("   " if last else "│  ") if depth < _MAX_INDENT else prefix
        kids = children.get(span.context.span_id if span.context else None, [])
        bar = "│ " if kids else "  "
        for event in span.events:
            text = _event_text(event.name, dict(event.attributes or {}), labels)
            if text:
                lines.append(inner + bar + style("dim", f"· +{_ms(event.timestamp - t0)} ") + text)
        for text in _folded_lines(dict(span.attributes or {})):
            lines.append(inner + bar + style("dim", text))
        last_kid = len(kids) - 1
        stack.extend((kid, inner, i == last_kid, depth + 1) for i, kid in reversed(list(enumerate(kids))))


def _headline(span: ReadableSpan, labels: dict[Any, str], style: Any) -> str:
    attrs = dict(span.attributes or {})
    kind = span.name.split(" ", 1)[0]
    duration = (span.end_time or 0) - (span.start_time or 0)
    parts = [style(kind, span.name), _ms(duration)]
    ident = _identity(kind, attrs)
    if ident:
        parts.insert(1, style("dim", ident))
    if kind == "task":
        parts.append(_task_summary(attrs, style))
    elif kind == "resource":
        parts.append(_state_summary(attrs))
    elif kind == "async_op":
        parts.append(_op_summary(attrs, labels))
    elif kind == "poll":
        ready = attrs.get(sc.POLL_IS_READY)
        parts.append("ready" if ready else "pending" if ready is not None else "")
    if span.status.status_code is StatusCode.ERROR:
        description = str(span.status.description)
        lint = description.split(":", 1)[0]
        shown = lint if lint in Lint.ALL else description  # the lint's event says the rest
        parts.append(style("error", f"error: {shown}"))
    if attrs.get(sc.UNFINISHED):
        parts.append(style("error", "unfinished at exit"))
    if isinstance(span, _Windows):
        parts.append(style("dim", f"{span.count} windows"))
    where = attrs.get(sc.CODE_FILE_PATH)
    if where and kind != "poll":
        parts.append(style("dim", f"[{os.path.basename(str(where))}:{attrs.get(sc.CODE_LINE_NUMBER)}]"))
    return "  ".join(p for p in parts if p)


def _identity(kind: str, attrs: dict[str, Any]) -> str:
    key = {"task": sc.TASK_ID, "resource": sc.RESOURCE_ID, "async_op": sc.ASYNC_OP_ID}.get(kind)
    ident = f"#{attrs[key]}" if key and key in attrs else ""
    name = attrs.get(sc.RESOURCE_NAME) if kind == "resource" else None
    return f"{ident}  {name}" if name else ident


def _task_summary(attrs: dict[str, Any], style: Any) -> str:
    outcome = attrs.get(sc.TASK_OUTCOME, "")
    stats = (
        f"polls={attrs.get(sc.TASK_POLLS, 0)} busy={_duration(attrs.get(sc.TASK_BUSY))} "
        f"sched={_duration(attrs.get(sc.TASK_SCHEDULED))} idle={_duration(attrs.get(sc.TASK_IDLE))} "
        f"wakes={attrs.get(sc.TASK_WAKES, 0)} self={attrs.get(sc.TASK_SELF_WAKES, 0)}"
    )
    shown = style("error", outcome) if outcome in ("error", "lost") else outcome
    return f"{shown}  {stats}"


def _state_summary(attrs: dict[str, Any]) -> str:
    prefix = sc.RESOURCE_STATE_PREFIX
    return " ".join(
        f"{k[len(prefix) :]}={_value(v, attrs.get(k + '.unit'))}"
        for k, v in attrs.items()
        if k.startswith(prefix) and not k.endswith(".unit")
    )


def _op_summary(attrs: dict[str, Any], labels: dict[Any, str]) -> str:
    parts = [str(attrs.get(sc.ASYNC_OP_OUTCOME, ""))]
    if sc.AWAITED_TASK_ID in attrs:
        parts.append(f"on {_awaited_label(attrs, labels)}")
    if sc.ASYNC_OP_POLLS in attrs:
        parts.append(f"polls={attrs[sc.ASYNC_OP_POLLS]}")
    if sc.HELD_BY_IDS in attrs:
        held = zip(attrs[sc.HELD_BY_IDS], attrs.get(sc.HELD_BY_NAMES, ()), strict=False)
        parts.append("held by " + ", ".join(_task_label(i, labels, name) for i, name in held))
    if sc.WAKER_TASK_ID in attrs:
        parts.append(f"woken by {_waker_label(attrs, labels)}")
    if sc.TASK_ID in attrs:
        parts.append(f"awaited by {_task_label(attrs[sc.TASK_ID], labels)}")
    parts.append(_state_summary(attrs))  # a sleep's timer, folded into its op: its duration
    return "  ".join(p for p in parts if p)


def _folded_lines(attrs: dict[str, Any]) -> list[str]:
    """What was folded into this span, one line per kind (issue 11: nothing
    vanishes without a word)."""
    lines = []
    tasks = attrs.get(sc.FOLDED_TASKS)
    if tasks:
        aggregates = (sc.FOLDED_TASKS_DURATION, sc.FOLDED_TASKS_LONGEST)
        outcomes = "  ".join(
            f"{k[len(sc.FOLDED_TASKS_PREFIX) :]} {v}"
            for k, v in sorted(attrs.items())
            if k.startswith(sc.FOLDED_TASKS_PREFIX) and k not in aggregates
        )
        lines.append(
            f"+ {tasks} tasks folded ({outcomes}; longest {_duration(attrs.get(sc.FOLDED_TASKS_LONGEST))})"
        )
    waits = attrs.get(sc.FOLDED_WAITS)
    if waits:
        sources = attrs.get(sc.FOLDED_WAITS_SOURCES, ())
        counts = attrs.get(sc.FOLDED_WAITS_COUNTS, ())
        slowest = max(attrs.get(sc.FOLDED_WAITS_LONGEST) or (0,))
        each = ", ".join(f"{source} {n}" for source, n in zip(sources, counts, strict=False))
        lines.append(f"+ {waits} waits folded ({each}; longest {_duration(slowest)})")
    resources = attrs.get(sc.FOLDED_RESOURCES)
    if resources:
        types = attrs.get(sc.FOLDED_RESOURCES_TYPES, ())
        counts = attrs.get(sc.FOLDED_RESOURCES_COUNTS, ())
        each = ", ".join(f"{t} {n}" for t, n in zip(types, counts, strict=False))
        lines.append(f"+ {resources} resources folded ({each})")
    return lines


def _task_label(task_id: Any, labels: dict[Any, str], name: Any = None, folded: Any = False) -> str:
    """A task named by id, with its name: the one of its span in this trace,
    else the one the reference carries (and whether it was folded)."""
    label = labels.get(task_id) or name
    mark = ", folded" if folded else ""
    if label:
        return f"task #{task_id} ({label}{mark})"
    return f"task #{task_id} (folded)" if folded else f"task #{task_id}"


def _waker_label(attrs: dict[str, Any], labels: dict[Any, str]) -> str:
    return _task_label(
        attrs[sc.WAKER_TASK_ID], labels, attrs.get(sc.WAKER_TASK_NAME), attrs.get(sc.WAKER_TASK_FOLDED)
    )


def _awaited_label(attrs: dict[str, Any], labels: dict[Any, str]) -> str:
    return _task_label(
        attrs[sc.AWAITED_TASK_ID], labels, attrs.get(sc.AWAITED_TASK_NAME), attrs.get(sc.AWAITED_TASK_FOLDED)
    )


def _event_text(name: str, attrs: dict[str, Any], labels: dict[Any, str]) -> str:
    if name == sc.EVENT_STATE_UPDATE:
        return "state_update " + " ".join(
            f"{k}={_value(v, attrs.get(k + '.unit'))}"
            + (f" ({attrs[k + '.op']})" if k + ".op" in attrs else "")
            for k, v in attrs.items()
            if not k.endswith((".op", ".unit"))
        )
    if name == sc.EVENT_WAKER_WAKE:
        text = f"waker.wake ({attrs.get(sc.WAKE_CAUSE)})"
        if sc.WAKER_TASK_ID in attrs and not attrs.get(sc.WAKE_SELF):
            text += f" by {_waker_label(attrs, labels)}"
        return text + _via(attrs)
    if name == sc.EVENT_WAKER_CLONE:
        text = "waker.clone"
        if sc.AWAITED_TASK_ID in attrs:
            text += f" awaiting {_awaited_label(attrs, labels)}"
        return text + _via(attrs)
    if name == sc.EVENT_WAKER_DROP:
        return f"waker.drop ({attrs.get(sc.WAKER_DROP_REASON)})" + _via(attrs)
    if name == "exception":
        return f"exception {attrs.get('exception.type')}: {attrs.get('exception.message')}"
    if name in Lint.ALL:
        return f"{name}: {attrs.get(sc.LINT_MESSAGE)}"
    return ""


def _via(attrs: dict[str, Any]) -> str:
    parts = []
    if sc.RESOURCE_ID in attrs:
        resource = f"resource #{attrs[sc.RESOURCE_ID]}"
        if attrs.get(sc.RESOURCE_FOLDED):  # no span in the trace: say what it was
            resource += f" ({attrs.get(sc.RESOURCE_CONCRETE_TYPE, 'resource')}, folded)"
        parts.append(resource)
    if sc.ASYNC_OP_ID in attrs:
        folded = attrs.get(sc.ASYNC_OP_FOLDED)
        op = f"op #{attrs[sc.ASYNC_OP_ID]}"
        parts.append(f"{op} ({attrs.get(sc.ASYNC_OP_SOURCE, 'async op')}, folded)" if folded else op)
    return (" via " + ", ".join(parts)) if parts else ""
