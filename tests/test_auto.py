"""Auto-instrumentation: the ``otel_asyncres`` instrumentor, run by
``opentelemetry-instrument`` as its users run it (a subprocess exporting to
the real OTLP receivers of ``otlp_receivers.py``), and called directly."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_asyncres
from conftest import one, run_with
from otel_asyncres.instrumentor import AsyncioRuntimeInstrumentor
from otel_asyncres.session import current_session
from otlp_receivers import GrpcReceiver, HttpReceiver, ReceivedSpan, Receiver, child_env
from test_otlp_e2e import EXPECTED_STDOUT, ONESHOT, check_oneshot_trace, describe

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds; a hang must fail the test, not the whole run
OPENTELEMETRY_INSTRUMENT = str(Path(sys.executable).with_name("opentelemetry-instrument"))

#: A request span of the application's, with a task spawned inside it; it
#: says at the end whether asyncio was instrumented.
APP = """\
    import asyncio

    from opentelemetry import trace

    from otel_asyncres.session import current_session


    async def work():
        await asyncio.sleep(0.01)


    async def main():
        with trace.get_tracer("app").start_as_current_span("request"):
            await asyncio.create_task(work(), name="work")


    asyncio.run(main())
    print("instrumented" if current_session() is not None else "plain")
"""


def instrumented_run(script: Path, receiver: Receiver, **env: str) -> tuple[str, list[ReceivedSpan]]:
    """``opentelemetry-instrument python script`` exporting traces to
    ``receiver`` (metrics and logs off: the receivers take traces only); its
    stdout, and the spans received by the time it exited."""
    environment = child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        **env,
    )
    result = subprocess.run(
        [OPENTELEMETRY_INSTRUMENT, sys.executable, str(script)],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # The SDK exports synchronously at exit: what was sent has arrived.
    return result.stdout, receiver.spans()


RECEIVERS: dict[str, tuple[Callable[[], Receiver], dict[str, str]]] = {
    "grpc": (GrpcReceiver, {}),
    # An exporter name of the SDK's that is none of ours: the distro's
    # business, not an error of this package's configuration.
    "http/protobuf": (
        HttpReceiver,
        {"OTEL_TRACES_EXPORTER": "otlp_proto_http", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
    ),
}


@pytest.mark.parametrize("protocol", list(RECEIVERS))
def test_opentelemetry_instrument_exports_the_runtime_spans(protocol: str) -> None:
    make_receiver, env = RECEIVERS[protocol]
    with make_receiver() as receiver:
        stdout, spans = instrumented_run(ONESHOT, receiver, OTEL_SERVICE_NAME="oneshot", **env)
    assert stdout == EXPECTED_STDOUT
    check_oneshot_trace(spans)
    # Through the distro's provider: its resource, this package's scope.
    assert {s.resource["service.name"] for s in spans} == {"oneshot"}
    assert {s.scope for s in spans} == {"otel_asyncres"}


@pytest.fixture
def app_script(tmp_path: Path) -> Path:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP))
    return script


def test_tasks_of_an_application_span_are_in_its_trace(app_script: Path) -> None:
    with GrpcReceiver() as receiver:
        stdout, spans = instrumented_run(app_script, receiver)
    assert stdout == "instrumented\n"
    request = one([s for s in spans if s.scope == "app"], "request")
    work = one(spans, "task work")
    assert work.span.trace_id == request.span.trace_id, describe(spans)
    assert work.span.parent_span_id == request.span.span_id, describe(spans)


@pytest.mark.parametrize(
    "env, expected",
    [
        # The application's span still arrives: only this instrumentation is off.
        ({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "otel_asyncres"}, ["request"]),
        ({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests, otel_asyncres"}, ["request"]),
        # The whole SDK is off, and so is this package.
        ({"OTEL_SDK_DISABLED": "true"}, []),
    ],
    ids=["by-name", "in-a-list", "sdk-disabled"],
)
def test_disabled_it_does_nothing(app_script: Path, env: dict[str, str], expected: list[str]) -> None:
    with GrpcReceiver() as receiver:
        stdout, spans = instrumented_run(app_script, receiver, **env)
    assert stdout == "plain\n"
    assert [s.name for s in spans] == expected, describe(spans)


def test_registered_under_the_opentelemetry_instrumentor_group() -> None:
    (entry,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "otel_asyncres"]
    instrumentor = entry.load()
    assert instrumentor is AsyncioRuntimeInstrumentor
    assert issubclass(instrumentor, BaseInstrumentor)
    assert list(instrumentor().instrumentation_dependencies()) == []


@pytest.fixture
def instrumentor() -> Iterator[AsyncioRuntimeInstrumentor]:
    assert current_session() is None, "a previous test left asyncio instrumented"
    it = AsyncioRuntimeInstrumentor()
    try:
        yield it
    finally:
        if it.is_instrumented_by_opentelemetry:
            it.uninstrument()
        otel_asyncres.uninstrument()


async def spawn_one() -> None:
    await asyncio.create_task(asyncio.sleep(0.005), name="child")


def test_instrumentor_uses_the_providers_it_is_given(instrumentor: AsyncioRuntimeInstrumentor) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, detail="tasks")
    session = current_session()
    assert session is not None
    assert session.provider is tracer_provider
    assert session.meter_provider is meter_provider
    assert session.settings.detail == "tasks"  # the options of instrument(), passed on
    run_with("asyncio", spawn_one)
    instrumentor.uninstrument()
    assert current_session() is None
    names = {s.name for s in exporter.get_finished_spans()}
    assert {"task spawn_one", "task child"} <= names, names
    assert not any(name.startswith("async_op ") for name in names), "detail=tasks records no waits"


def test_instrumentor_with_a_bad_option_says_so_and_does_nothing(
    instrumentor: AsyncioRuntimeInstrumentor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="otel_asyncres"):
        instrumentor.instrument(tracer_provider=TracerProvider(), detail="everything")
    assert current_session() is None
    (record,) = caplog.records
    assert record.getMessage().startswith("otel-asyncres: not instrumenting: detail='everything'")


def test_importing_the_package_never_needs_opentelemetry_instrumentation() -> None:
    """Every module but the instrumentor imports and works without it; the
    instrumentor says which extra to install."""
    code = textwrap.dedent(
        """\
        import importlib, pkgutil, sys

        sys.modules["opentelemetry.instrumentation"] = None  # as if not installed
        import otel_asyncres

        skip = {"otel_asyncres.instrumentor", "otel_asyncres.__main__"}
        for module in pkgutil.walk_packages(otel_asyncres.__path__, "otel_asyncres."):
            if module.name not in skip and "_bootstrap" not in module.name:
                importlib.import_module(module.name)
        otel_asyncres.instrument(exporter="none")
        otel_asyncres.uninstrument()
        try:
            import otel_asyncres.instrumentor
        except ImportError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "otel_asyncres.instrumentor needs opentelemetry-instrumentation: pip install 'otel-asyncres[auto]'\n"
    )


# -- a real aiohttp service under opentelemetry-instrument (issue 12 item 2) -------------------

WEBSVC = ROOT / "benchmarks" / "websvc" / "app.py"


async def _load(port: int, requests: int) -> list[str]:
    """``requests`` concurrent ``GET /square/{n}``, more than the pool's two
    connections: most handlers wait for one."""
    import aiohttp

    async with aiohttp.ClientSession() as session:

        async def get(n: int) -> str:
            async with session.get(f"http://127.0.0.1:{port}/square/{n}") as response:
                return await response.text()

        return await asyncio.gather(*(get(n) for n in range(requests)))


def _serve_and_load(receiver: Receiver, requests: int, **env: str) -> list[ReceivedSpan]:
    """Start the web-service benchmark's app under ``opentelemetry-instrument``
    (aiohttp-server instrumentation and this package), load it, stop it with
    SIGINT (aiohttp's clean shutdown: the SDK flushes at exit)."""
    import signal
    import time
    import urllib.request

    from otlp_receivers import free_port

    port = free_port()
    environment = child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="websvc",
        **env,
    )
    server = subprocess.Popen(
        [OPENTELEMETRY_INSTRUMENT, sys.executable, str(WEBSVC), "--port", str(port)],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.05)
        replies = asyncio.run(_load(port, requests))
        assert replies == [f"{n} squared is {n * n}\n" for n in range(requests)]
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=TIMEOUT)
    assert server.returncode == 0, stderr
    return receiver.spans()


def _descendants(root: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    children: dict[bytes, list[ReceivedSpan]] = {}
    for s in spans:
        children.setdefault(s.span.parent_span_id, []).append(s)
    found, todo = [], [root.span.span_id]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.span.span_id)
    return found


@pytest.mark.parametrize("budget", ["off", "default"])
def test_every_request_trace_holds_the_handlers_waits(budget: str) -> None:
    """Each request's trace (its aiohttp server span) holds what its handler
    waited on: the worker's future and the sleep, always; the pool's
    Semaphore when the handler had to wait for a connection (10 concurrent
    requests for 2 connections: most do). The handler's ``put`` never waits
    (the queue is unbounded), so it is no op. With the default budget at
    this load nothing needs folding, and the check is the same whether a wait
    was shown or folded and counted on a span of the request's trace; under
    sustained load the folded ones are counted on the handler's task, in the
    connection's trace (a known gap, CHANGELOG)."""
    env = {"OTEL_ASYNCRES_BUDGET": "off"} if budget == "off" else {}
    with GrpcReceiver() as receiver:
        spans = _serve_and_load(receiver, 10, **env)
    servers = [s for s in spans if s.scope.startswith("opentelemetry.instrumentation.aiohttp_server")]
    squares = [
        s
        for s in servers
        if "/square" in str(s.attributes.get("http.target", s.attributes.get("url.path", "")))
    ]
    assert len(squares) == 10, describe(spans)
    pool_waits = 0
    for server in squares:
        below = _descendants(server, spans)
        assert {s.span.trace_id for s in below} <= {server.span.trace_id}
        names = Counter(s.name for s in below)
        pool_waits += names["async_op Semaphore.acquire"]
        if budget == "off":
            assert names["async_op Future.__await__"] == 1, describe(below)
            assert names["async_op sleep"] == 1, describe(below)
        else:  # shown, or folded and counted on a span of the request's trace
            folded = sum(
                count
                for s in [server, *below]
                for source, count in zip(
                    s.attributes.get("asyncio.folded.waits.sources", ()),
                    s.attributes.get("asyncio.folded.waits.counts", ()),
                    strict=True,
                )
                if source in ("Future.__await__", "sleep")
            )
            assert names["async_op Future.__await__"] + names["async_op sleep"] + folded >= 2, describe(below)
    if budget == "off":
        assert pool_waits >= 1, describe(spans)
    outside = [
        s
        for s in spans
        if s.name == "async_op Semaphore.acquire"
        and s.span.trace_id not in {q.span.trace_id for q in squares}
    ]
    assert outside == [], describe(outside)
