"""End to end over real OTLP: ``otel-asyncres run examples/oneshot.py`` in a
subprocess, exporting to a gRPC or HTTP/protobuf receiver in this process;
the assertions are on the protobufs that arrive."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otlp_receivers import (
    GrpcReceiver,
    HttpReceiver,
    ReceivedSpan,
    Receiver,
    attributes,
    child_env,
    free_port,
)

ROOT = Path(__file__).resolve().parent.parent
ONESHOT = ROOT / "examples" / "oneshot.py"
EXPECTED_STDOUT = "received 5\ngood-bye\n"
TIMEOUT = 60  # seconds; a hang must fail the test, not the whole run
SUMMARY = re.compile(r"otel-asyncres: (\d+) spans exported to (\S+) \((grpc|http/protobuf)\)")
RECEIVERS: dict[str, Callable[[], Receiver]] = {"grpc": GrpcReceiver, "http/protobuf": HttpReceiver}


def run_oneshot(*options: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_asyncres", "run", *options, str(ONESHOT)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture(params=list(RECEIVERS))
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    with RECEIVERS[request.param]() as r:
        yield r


def describe(spans: list[ReceivedSpan]) -> str:
    return "\n".join(
        f"{s.span.span_id.hex()} <- {s.span.parent_span_id.hex() or '-':16} {s.name} "
        f"{[e.name for e in s.span.events]}"
        for s in spans
    )


def received(result: subprocess.CompletedProcess[str], receiver: Receiver) -> list[ReceivedSpan]:
    """Check the run went as plain python would, and the one summary line;
    return the spans received (as many as the summary says)."""
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_STDOUT
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one summary line on stderr, got:\n{result.stderr}"
    match = SUMMARY.fullmatch(lines[0])
    assert match, lines[0]
    count, endpoint, reported_protocol = int(match[1]), match[2], match[3]
    assert endpoint == receiver.traces_endpoint
    assert reported_protocol == receiver.protocol
    assert receiver.wait_for(count, timeout=10), f"{receiver.span_count()} of {count} spans arrived"
    spans = receiver.spans()
    assert len(spans) == count, describe(spans)
    return spans


def by_name(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = by_name(spans, name)
    assert len(found) == 1, f"expected one span {name!r} in:\n{describe(spans)}"
    return found[0]


def events(s: ReceivedSpan, name: str) -> list[dict[str, Any]]:
    return [attributes(e.attributes) for e in s.span.events if e.name == name]


def related(s: ReceivedSpan, relation: str) -> list[bytes]:
    """The span ids ``s`` links to with ``asyncio.link.relation == relation``."""
    return [
        link.span_id
        for link in s.span.links
        if attributes(link.attributes).get("asyncio.link.relation") == relation
    ]


def check_oneshot_trace(spans: list[ReceivedSpan], op_parent: str = "task") -> None:
    """The issue's "done when", on the protobufs."""
    # One trace, one resource, unique span ids, no orphan parents.
    assert {s.span.trace_id for s in spans} == {spans[0].span.trace_id}, describe(spans)
    assert len({s.resource.__repr__() for s in spans}) == 1
    ids = {s.span.span_id for s in spans}
    assert len(ids) == len(spans), "duplicate span ids"
    roots = [s for s in spans if not s.span.parent_span_id]
    assert [s.name for s in roots] == ["task main"], describe(spans)
    for s in spans:
        if s.span.parent_span_id:
            assert s.span.parent_span_id in ids, f"{s.name}: parent not exported\n{describe(spans)}"

    # Nothing dropped, every event inside its span, spans not reversed.
    for s in spans:
        sp = s.span
        assert (sp.dropped_attributes_count, sp.dropped_events_count, sp.dropped_links_count) == (0, 0, 0), (
            s.name
        )
        assert 0 < sp.start_time_unix_nano <= sp.end_time_unix_nano, s.name
        for e in sp.events:
            assert e.dropped_attributes_count == 0, (s.name, e.name)
            assert sp.start_time_unix_nano <= e.time_unix_nano <= sp.end_time_unix_nano, (s.name, e.name)
        for link in sp.links:
            assert link.dropped_attributes_count == 0, s.name
            assert link.trace_id == sp.trace_id and link.span_id in ids, f"{s.name}: link to nowhere"

    # Task spans with Tokio Console's statistics.
    tasks = {name: one(spans, f"task {name}") for name in ("tokio-oneshot", "receiver", "sender")}
    for name, task in tasks.items():
        attrs = task.attributes
        assert attrs["asyncio.task.name"] == name
        assert attrs["asyncio.task.outcome"] == "ok"
        assert isinstance(attrs["asyncio.task.id"], int)
        assert attrs["asyncio.task.polls"] >= 1, attrs
        for key in ("busy_duration", "scheduled_duration", "idle_duration"):
            assert attrs[f"asyncio.task.{key}"] >= 0, (name, key, attrs)
        assert attrs["asyncio.task.busy_duration"] > 0, attrs
        for key in ("wakes", "self_wakes", "waker_clones", "waker_drops"):
            assert attrs[f"asyncio.task.{key}"] >= 0, (name, key, attrs)
        assert "asyncio.unfinished" not in attrs
        assert task.span.parent_span_id, f"task {name} has no parent"
    oneshot = tasks["tokio-oneshot"]
    assert tasks["receiver"].span.parent_span_id == oneshot.span.span_id
    assert tasks["sender"].span.parent_span_id == oneshot.span.span_id

    # Source locations point at the example, never at asyncio or this library.
    for s in spans:
        if s.name == "poll":
            continue
        path = s.attributes.get("code.file.path")
        assert path is not None and Path(path).name == "oneshot.py", (s.name, path)
        assert s.attributes["code.line.number"] > 0

    # The future as a one-shot channel, with its state.
    future = one(spans, "resource asyncio.Future")
    updates = events(future, "state_update")
    assert any(u.get("value_sent") is True and u.get("value_sent.op") == "override" for u in updates), updates
    assert isinstance(future.attributes["asyncio.resource.id"], int)

    # The receiver's await: child of the receiver's task (or of the future,
    # with --op-parent resource), linked to the other one, woken by the sender.
    op = one(spans, "async_op Future.__await__")
    assert op.attributes["asyncio.async_op.source"] == "Future.__await__"
    assert op.attributes["asyncio.resource.id"] == future.attributes["asyncio.resource.id"]
    if op_parent == "task":
        assert op.span.parent_span_id == tasks["receiver"].span.span_id, describe(spans)
        assert related(op, "resource") == [future.span.span_id], op.span.links
    else:
        assert op.span.parent_span_id == future.span.span_id, describe(spans)
        assert related(op, "awaited_by") == [tasks["receiver"].span.span_id], op.span.links
    assert related(op, "woken_by") == [tasks["sender"].span.span_id], op.span.links
    # Every poll span belongs to an async op (the future's await, the sender's sleep).
    op_ids = {s.span.span_id for s in spans if s.name.startswith("async_op ")}
    for poll in by_name(spans, "poll"):
        assert poll.span.parent_span_id in op_ids

    # Wakers on the receiver's task: registered, then woken by the sender.
    receiver = tasks["receiver"]
    assert events(receiver, "waker.clone"), [e.name for e in receiver.span.events]
    wakes = events(receiver, "waker.wake")
    assert wakes, [e.name for e in receiver.span.events]
    sender_id = tasks["sender"].attributes["asyncio.task.id"]
    assert any(w.get("asyncio.waker.task.id") == sender_id for w in wakes), wakes


def otlp_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    protocol = receiver.protocol
    return child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol, **extra
    )


def test_env_configuration(receiver: Receiver) -> None:
    result = run_oneshot(env=otlp_env(receiver))
    spans = received(result, receiver)
    check_oneshot_trace(spans)
    resource = spans[0].resource
    assert resource["service.name"] == "oneshot"  # the CLI names the service after the script
    assert resource["telemetry.sdk.name"] == "opentelemetry"
    assert spans[0].scope == "otel_asyncres"


def test_flags_instead_of_env(receiver: Receiver) -> None:
    protocol = receiver.protocol
    result = run_oneshot("--endpoint", receiver.endpoint, "--protocol", protocol, env=child_env())
    check_oneshot_trace(received(result, receiver))


def test_flags_win_over_env(receiver: Receiver) -> None:
    """An explicit flag beats the environment: the env points at a closed port."""
    protocol = receiver.protocol
    env = child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc" if protocol != "grpc" else "http/protobuf",
    )
    result = run_oneshot("--endpoint", receiver.endpoint, "--protocol", protocol, env=env)
    check_oneshot_trace(received(result, receiver))


def test_signal_specific_traces_endpoint(receiver: Receiver) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is (the full URL for HTTP)
    and wins over OTEL_EXPORTER_OTLP_ENDPOINT."""
    protocol = receiver.protocol
    env = child_env(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.traces_endpoint,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
    )
    result = run_oneshot(env=env)
    check_oneshot_trace(received(result, receiver))


def test_service_name_and_resource_attributes(receiver: Receiver) -> None:
    env = otlp_env(
        receiver, OTEL_SERVICE_NAME="payments", OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test,team=a"
    )
    spans = received(run_oneshot(env=env), receiver)
    check_oneshot_trace(spans)
    for s in spans:
        assert s.resource["service.name"] == "payments"
        assert s.resource["deployment.environment"] == "test"
        assert s.resource["team"] == "a"


def test_service_name_flag_wins(receiver: Receiver) -> None:
    env = otlp_env(receiver, OTEL_SERVICE_NAME="from-env")
    spans = received(run_oneshot("--service-name", "from-flag", env=env), receiver)
    assert {s.resource["service.name"] for s in spans} == {"from-flag"}


def test_resource_attributes_service_name_wins_over_default(receiver: Receiver) -> None:
    """service.name given in OTEL_RESOURCE_ATTRIBUTES is a configured name: the
    script's name is only the default when nothing names the service."""
    env = otlp_env(receiver, OTEL_RESOURCE_ATTRIBUTES="service.name=billing,deployment.environment=test")
    spans = received(run_oneshot(env=env), receiver)
    assert spans[0].resource["service.name"] == "billing"
    assert spans[0].resource["deployment.environment"] == "test"


def test_http_gzip_compression() -> None:
    with HttpReceiver() as receiver:
        env = child_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
        )
        spans = received(run_oneshot(env=env), receiver)
        check_oneshot_trace(spans)
        posts = receiver.headers
        assert posts and all(h.get("Content-Encoding") == "gzip" for h in posts), posts


def test_grpc_gzip_compression() -> None:
    with GrpcReceiver() as receiver:
        env = child_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
        )
        # grpcio decompresses before the servicer sees anything: what is checked
        # is that the exporter, so configured, still delivers everything.
        check_oneshot_trace(received(run_oneshot(env=env), receiver))


def test_op_parent_resource_without_poll_spans() -> None:
    with GrpcReceiver() as receiver:
        env = otlp_env(receiver, OTEL_ASYNCRES_OP_PARENT="resource")
        spans = received(run_oneshot("--op-poll-spans", "false", env=env), receiver)
    check_oneshot_trace(spans, op_parent="resource")
    assert by_name(spans, "poll") == []


def test_poll_spans_on_request() -> None:
    """By default an op's polls are counted (``asyncio.async_op.polls``), its
    span's start and end are its first and ready polls; a ``poll`` span and a
    poll_op event per poll only when asked for (or with detail=all)."""
    with HttpReceiver() as receiver:
        default = received(run_oneshot(env=otlp_env(receiver)), receiver)
    assert by_name(default, "poll") == []
    op = one(default, "async_op Future.__await__")
    assert events(op, "poll_op") == []
    assert attributes(op.span.attributes)["asyncio.async_op.polls"] == 2
    with HttpReceiver() as receiver:
        spans = received(run_oneshot("--op-poll-spans", "true", env=otlp_env(receiver)), receiver)
    op = one(spans, "async_op Future.__await__")
    assert [e["is_ready"] for e in events(op, "poll_op")] == [False, True]
    polls = sorted(
        (p for p in by_name(spans, "poll") if p.span.parent_span_id == op.span.span_id),
        key=lambda p: p.span.start_time_unix_nano,
    )
    assert [attributes(p.span.attributes).get("asyncio.poll.is_ready") for p in polls] == [False, True]


def test_otlp_and_console_together() -> None:
    with GrpcReceiver() as receiver:
        result = run_oneshot(env=otlp_env(receiver, OTEL_TRACES_EXPORTER="otlp,console"))
        assert result.returncode == 0, result.stderr
        assert result.stdout == EXPECTED_STDOUT
        assert "task tokio-oneshot" in result.stderr and "async_op Future.__await__" in result.stderr
        (summary,) = [m for line in result.stderr.splitlines() if (m := SUMMARY.fullmatch(line))]
        assert receiver.wait_for(int(summary[1]), timeout=10)
        check_oneshot_trace(receiver.spans())


def run_against_dead_collector(protocol: str, **extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol, **extra)
    started = time.monotonic()
    result = run_oneshot(env=env)
    elapsed = time.monotonic() - started
    print(f"collector down, {protocol}, {extra or 'default timeout'}: exit after {elapsed:.1f}s")
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_STDOUT
    url = endpoint + ("/v1/traces" if protocol == "http/protobuf" else "")
    failed = re.compile(
        rf"otel-asyncres: (\d+) spans could not be exported to {re.escape(url)} \({re.escape(protocol)}\)"
    )
    metrics_url = endpoint + ("/v1/metrics" if protocol == "http/protobuf" else "")
    metrics_failed = re.compile(
        rf"otel-asyncres: \d+ of \d+ metric exports to {re.escape(metrics_url)} "
        rf"\({re.escape(protocol)}\) failed: "
    )
    ours = [line for line in result.stderr.splitlines() if line.startswith("otel-asyncres:")]
    assert len(ours) == 3, result.stderr
    said_at_once, ours = ours[0], ours[1:]
    assert said_at_once.startswith(f"otel-asyncres: cannot export to {url} ({protocol}): "), said_at_once
    assert failed.match(ours[0]) and metrics_failed.match(ours[1]), result.stderr
    assert "the exporter reported failure" not in ours[0], "the exporter's own reason is said"
    assert "metrics" not in ours[0] and "span" not in ours[1], "each says its own exporter's reason"
    assert int(failed.match(ours[0])[1]) > 0  # type: ignore[index]
    assert result.stderr.splitlines()[-2:] == ours, "the summary comes last"
    return result, elapsed


@pytest.mark.parametrize("protocol", list(RECEIVERS))
def test_collector_down_short_timeout(protocol: str) -> None:
    """OTEL_EXPORTER_OTLP_TIMEOUT=2: the program runs and exits normally, the
    loss is reported, and exit is not held up for long."""
    run_against_dead_collector(protocol, OTEL_EXPORTER_OTLP_TIMEOUT="2")


@pytest.mark.slow
@pytest.mark.parametrize("protocol", list(RECEIVERS))
def test_collector_down_default_timeout(protocol: str) -> None:
    """With the exporter's default timeout (10 s per export, retrying) the
    export at exit still gives up within its own limit (5 s for traces and
    metrics together): the traces' retries are cut short, and the metrics are
    not tried for another 10 s."""
    result, _ = run_against_dead_collector(protocol)
    assert "ran out of time" in result.stderr.splitlines()[-1], result.stderr


def test_resource_names_the_host_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """host.name tells a backend that every span has this process's clock (Jaeger
    v2 compares the clocks of parent and child spans from different hosts only)."""
    from otel_asyncres.config import load_settings
    from otel_asyncres.export.setup import resource_for

    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    attributes = resource_for(load_settings({})).attributes
    assert attributes["host.name"] == socket.gethostname()
    # Jaeger's v1 API (its UI's) knows a host by an ``ip`` process tag only.
    assert socket.inet_aton(str(attributes["ip"]))
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "host.name=box,team=a,ip=10.1.2.3")
    attributes = resource_for(load_settings({})).attributes
    assert (attributes["host.name"], attributes["ip"]) == ("box", "10.1.2.3")
