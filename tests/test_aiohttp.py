"""Nesting in real request traces: an aiohttp server and client over loopback,
traced by their OpenTelemetry instrumentations from PyPI and by this package,
all into one SDK provider with an in-memory exporter.

The request handler spawns tasks that wait on an Event, a Lock and a sleep;
those tasks and their waits must be in the request's trace (the client's
span, the server's span under it), each with a parent chain that reaches the
server span.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

import pytest
from aiohttp import ClientSession, web
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import otel_asyncres
from conftest import Runner, Traced, by_name, make_traced, one, run_with
from otel_asyncres.session import current_session

# The server instrumentation subclasses web.Application, which aiohttp frowns on.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class _InstrumentedApplication")


@pytest.fixture
def http_traced() -> Iterator[Traced]:
    """Our instrumentation and aiohttp's, writing to the same provider. The
    server instrumentation replaces ``web.Application``, so apps are made
    after this."""
    assert current_session() is None, "a previous test left asyncio instrumented"
    handle = make_traced(op_poll_spans=False)
    AioHttpServerInstrumentor().instrument(tracer_provider=handle.session.provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=handle.session.provider)
    try:
        yield handle
    finally:
        AioHttpClientInstrumentor().uninstrument()
        AioHttpServerInstrumentor().uninstrument()
        otel_asyncres.uninstrument()


async def fetch(n: int, gate: asyncio.Event, lock: asyncio.Lock, results: asyncio.Queue[int]) -> None:
    await gate.wait()  # parked until the handler opens the gate
    async with lock:  # the second fetch waits here for the first
        await asyncio.sleep(0.005)
    results.put_nowait(n)


async def handle(request: web.Request) -> web.Response:
    gate, lock, results = asyncio.Event(), asyncio.Lock(), asyncio.Queue[int]()
    tasks = [asyncio.create_task(fetch(n, gate, lock, results), name=f"fetch-{n}") for n in (1, 2)]
    await asyncio.sleep(0.002)  # both fetches are parked on the gate by now
    gate.set()
    await asyncio.gather(*tasks)
    return web.json_response(sorted(results.get_nowait() for _ in tasks))


async def one_request() -> object:
    app = web.Application()
    app.router.add_get("/fetch", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with ClientSession() as session, session.get(f"http://127.0.0.1:{port}/fetch") as response:
            response.raise_for_status()
            return await response.json()
    finally:
        await runner.cleanup()


def describe(spans: Sequence[ReadableSpan]) -> str:
    return "\n".join(
        f"{s.context.trace_id:032x} {s.context.span_id:016x} <- "
        f"{s.parent.span_id if s.parent else 0:016x} {s.name}"
        for s in spans
    )


def ancestors(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[int]:
    """Span ids from ``span``'s parent up to its trace's root (or the first
    parent that was not exported)."""
    by_id = {s.context.span_id: s for s in spans}
    chain: list[int] = []
    parent = span.parent
    while parent is not None:
        chain.append(parent.span_id)
        above = by_id.get(parent.span_id)
        parent = above.parent if above is not None else None
    return chain


def request_spans(spans: Sequence[ReadableSpan]) -> tuple[ReadableSpan, ReadableSpan]:
    """The client's span and the server's span under it, in one trace."""
    (client,) = [s for s in spans if s.kind is SpanKind.CLIENT]
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.parent is not None and server.parent.span_id == client.context.span_id, describe(spans)
    assert server.context.trace_id == client.context.trace_id
    return client, server


def attribute(span: ReadableSpan, key: str) -> object:
    return (span.attributes or {}).get(key)


def linked(span: ReadableSpan, relation: str) -> list[int]:
    """The span ids ``span`` links to with ``asyncio.link.relation == relation``."""
    return [
        x.context.span_id for x in span.links if (x.attributes or {}).get("asyncio.link.relation") == relation
    ]


def test_spawned_tasks_and_their_waits_are_in_the_request_trace(http_traced: Traced, run: Runner) -> None:
    assert run(one_request) == [1, 2]  # the program's own result, unchanged
    spans = http_traced.spans()
    _, server = request_spans(spans)
    trace_id = server.context.trace_id

    fetches = [one(spans, f"task fetch-{n}") for n in (1, 2)]
    for task in fetches:
        assert task.context.trace_id == trace_id, describe(spans)
        assert task.parent is not None and task.parent.span_id == server.context.span_id, describe(spans)
        assert attribute(task, "asyncio.task.outcome") == "ok"
        (spawner_id,) = linked(task, "spawned_by")  # the task that spawned it, in another trace
        (spawner,) = [s for s in spans if s.context.span_id == spawner_id]
        assert spawner.name.startswith("task "), spawner.name

    fetch_ids = {attribute(task, "asyncio.task.id") for task in fetches}
    waits = [
        s for s in spans if s.name.startswith("async_op ") and attribute(s, "asyncio.task.id") in fetch_ids
    ]
    names = sorted(s.name for s in waits)
    assert names == [
        "async_op Event.wait",
        "async_op Event.wait",
        "async_op Lock.acquire",
        "async_op sleep",
        "async_op sleep",
    ], describe(spans)
    for wait in waits:
        assert wait.context.trace_id == trace_id, describe(spans)
        assert server.context.span_id in ancestors(wait, spans), describe(spans)
    (lock_wait,) = by_name(waits, "async_op Lock.acquire")
    waiter = next(
        t for t in fetches if attribute(t, "asyncio.task.id") == attribute(lock_wait, "asyncio.task.id")
    )
    (holder,) = [t for t in fetches if t is not waiter]
    assert linked(lock_wait, "woken_by") == [holder.context.span_id], (
        "woken by the fetch that released the lock"
    )


def test_the_handlers_own_waits_are_in_the_request_trace(http_traced: Traced) -> None:
    """aiohttp runs each request in a task it spawned before the request's
    span began (eagerly, on 3.12+): the handler's own waits are read against
    the application's span current when they begin, and hang under it, their
    task linked (DESIGN.md section 2)."""
    assert run_with("asyncio", one_request) == [1, 2]
    spans = http_traced.spans()
    _, server = request_spans(spans)
    own = [
        s for s in spans if s.name.startswith("async_op ") and attribute(s, "code.function.name") == "handle"
    ]
    assert sorted(s.name for s in own) == ["async_op Task.__await__"] * 2 + [
        "async_op gather",
        "async_op sleep",
    ], describe(spans)
    (gather,) = by_name(own, "async_op gather")
    tasks = {s.context.span_id for s in spans if s.name.startswith("task ")}
    for wait in own:
        # The gather and the sleep hang under the request; the joins, under the gather.
        parent = gather if wait.name == "async_op Task.__await__" else server
        assert wait.parent is not None and wait.parent.span_id == parent.context.span_id, describe(spans)
    for wait in (gather, *by_name(own, "async_op sleep")):
        (task,) = linked(wait, "awaited_by")
        assert task in tasks, "the handler's task is linked"


async def sleep_a_little() -> None:
    await asyncio.sleep(0.003)


def spawn_eagerly(task_class: Any) -> Callable[[], Coroutine[Any, Any, None]]:
    async def spawn_eagerly() -> None:
        loop = asyncio.get_running_loop()
        await task_class(sleep_a_little(), loop=loop, eager_start=True, name="eager")

    return spawn_eagerly


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager_start is new in 3.12")
@pytest.mark.parametrize("task_class", ["Task", "_PyTask"])
def test_a_task_started_eagerly_by_its_constructor_is_seen_from_its_first_step(
    traced: Traced, task_class: str
) -> None:
    """As aiohttp starts every connection and request on 3.12+: the task is
    its spawner's child in its trace, both its steps are counted, the wait its
    first step began is its own, and awaiting it is no deadlock."""
    run_with("asyncio", spawn_eagerly(getattr(asyncio.tasks, task_class)))
    spans = traced.spans()
    eager = one(spans, "task eager")
    (spawner,) = [s for s in spans if s.name.endswith(".spawn_eagerly")]
    assert eager.parent is not None and eager.parent.span_id == spawner.context.span_id
    assert eager.context.trace_id == spawner.context.trace_id
    assert attribute(eager, "asyncio.task.polls") == 2
    sleep = one(spans, "async_op sleep")
    assert attribute(sleep, "asyncio.task.id") == attribute(eager, "asyncio.task.id")
    join = one(spans, "async_op Task.__await__")
    assert attribute(join, "asyncio.awaited_task.id") == attribute(eager, "asyncio.task.id")
    assert not [e for s in spans for e in s.events if e.name == "deadlock"]
