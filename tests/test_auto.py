"""Auto-instrumentation: the ``otel_asyncres`` instrumentor, run by
``opentelemetry-instrument`` as its users run it (a subprocess exporting to
the real OTLP receivers of ``otlp_receivers.py``), and called directly."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
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
