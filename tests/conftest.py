"""Shared fixtures: a real SDK with an in-memory exporter, and every kind of loop.

``traced`` instruments asyncio for one test with a TracerProvider whose spans
land in the SDK's own InMemorySpanExporter, with no budget (every entity is a
span). ``loop_kind`` runs a test on every loop and task flavour this machine
has: the default loop with the C Task, the pure-Python Task, the eager task
factory (3.12+) and uvloop (when installed).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_asyncres
from otel_asyncres.config import load_settings
from otel_asyncres.session import Session, activate, current_session

try:
    import uvloop
except ImportError:  # pragma: no cover - depends on the machine
    uvloop = None


class Traced:
    """Handle on an instrumented session writing to an in-memory exporter."""

    def __init__(self, session: Session, exporter: InMemorySpanExporter) -> None:
        self.session = session
        self.exporter = exporter

    def flush(self) -> None:
        self.session.handoff.flush()

    def spans(self) -> list[ReadableSpan]:
        """Finished spans; ends whatever is still open (as at exit)."""
        self.session.close(report=_Discard())
        return list(self.exporter.get_finished_spans())

    def finished_spans(self) -> list[ReadableSpan]:
        self.flush()
        return list(self.exporter.get_finished_spans())


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def make_traced(session_arguments: dict[str, Any] | None = None, **options: Any) -> Traced:
    """Everything shown unless a test says otherwise (no budget, poll spans
    included): the mapping tests check every span; the defaults have tests of
    their own. ``session_arguments``: what ``instrument()`` takes besides
    options (``meter_provider``, ``on_deadlock``)."""
    options = {"budget": "off", "op_poll_spans": True, **options}
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    session = Session(load_settings(options), tracer_provider=provider, **(session_arguments or {}))
    activate(session)
    return Traced(session, exporter)


@pytest.fixture
def traced() -> Iterator[Traced]:
    assert current_session() is None, "a previous test left asyncio instrumented"
    handle = make_traced()
    try:
        yield handle
    finally:
        otel_asyncres.uninstrument()


def _py_task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
    return asyncio.tasks._PyTask(coro, loop=loop, **kwargs)  # type: ignore[attr-defined,no-any-return]


LOOP_KINDS = ["asyncio", "pytask"]
if sys.version_info >= (3, 12):
    LOOP_KINDS.append("eager")
if uvloop is not None:
    LOOP_KINDS.append("uvloop")


Runner = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]


def run_with(kind: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main()`` to completion on a fresh loop of the given kind."""
    if kind == "uvloop":
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    if kind == "pytask":
        loop.set_task_factory(_py_task_factory)
    elif kind == "eager":
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(loop_kind: str) -> Runner:
    return lambda main: run_with(loop_kind, main)


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = by_name(spans, name)
    assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in spans]}"
    return found[0]


def events(span: ReadableSpan, name: str) -> list[Any]:
    return [e for e in span.events if e.name == name]


def state_updates(span: ReadableSpan) -> list[Any]:
    """A resource span's ``state_update`` events after the one it opens with
    (its whole state, every attribute an ``override``): the changes."""
    found = events(span, "state_update")
    assert found, f"{span.name} opens with no state_update"
    opening = found[0]
    assert all(v == "override" for k, v in (opening.attributes or {}).items() if k.endswith(".op")), opening
    assert opening.timestamp == span.start_time, "the opening state is at the span's start"
    return found[1:]
