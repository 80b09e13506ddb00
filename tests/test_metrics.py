"""Runtime metrics: the documented instruments, with the application's
MeterProvider (the SDK's, read by an InMemoryMetricReader) and over real OTLP
(gRPC and HTTP, to the receivers in otlp_receivers) from ``otel-asyncres run``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_asyncres
from conftest import make_traced
from otlp_receivers import GrpcReceiver, HttpReceiver, Receiver, attributes, child_env

ROOT = Path(__file__).resolve().parent.parent
ONESHOT = ROOT / "examples" / "oneshot.py"

#: Every instrument, with its unit (docs/mapping.md, "Runtime metrics").
INSTRUMENTS = {
    "asyncio.task.poll.duration": "s",
    "asyncio.task.schedule.delay": "s",
    "asyncio.async_op.duration": "s",
    "asyncio.task.spawned": "{task}",
    "asyncio.task.finished": "{task}",
    "asyncio.task.active": "{task}",
    "asyncio.resource.active": "{resource}",
}


def sdk_metrics(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def points(metric: Any) -> list[tuple[dict[str, Any], Any]]:
    return [(dict(p.attributes), p) for p in metric.data.data_points]


def test_the_instruments_count_what_the_program_did():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    make_traced({"meter_provider": provider})

    async def holder(lock):
        async with lock:
            await asyncio.sleep(0.02)

    async def failing():
        raise ValueError("no")

    async def main():
        lock = asyncio.Lock()
        await asyncio.gather(*(holder(lock) for _ in range(3)))
        with pytest.raises(ValueError):
            await asyncio.create_task(failing())

    try:
        asyncio.run(main())
        otel_asyncres.flush()
        found = sdk_metrics(reader)
    finally:
        otel_asyncres.uninstrument()
    assert {name: found[name].unit for name in INSTRUMENTS} == INSTRUMENTS
    # main, three holders (gather wraps each in a task), the failing one.
    (spawned,) = points(found["asyncio.task.spawned"])
    assert spawned == ({"asyncio.task.kind": "task"}, spawned[1]) and spawned[1].value == 5
    finished = {attrs["asyncio.task.outcome"]: p.value for attrs, p in points(found["asyncio.task.finished"])}
    assert finished == {"ok": 4, "error": 1}
    polls = points(found["asyncio.task.poll.duration"])
    assert sum(p.count for _, p in polls) >= 5 + 3  # each task once, the holders again after sleeping
    waits = {
        (a["asyncio.resource.concrete_type"], a["asyncio.async_op.source"], a["asyncio.async_op.outcome"]): p
        for a, p in points(found["asyncio.async_op.duration"])
    }
    assert waits[("asyncio.Lock", "Lock.acquire", "ok")].count == 2  # the second and third holder waited
    assert waits[("asyncio.sleep", "sleep", "ok")].count == 3
    assert waits[("asyncio.Lock", "Lock.acquire", "ok")].sum >= 0.02
    assert [p.value for _, p in points(found["asyncio.task.active"])] == [0]  # all done
    resources = {
        a["asyncio.resource.concrete_type"]: p.value for a, p in points(found["asyncio.resource.active"])
    }
    assert resources["asyncio.sleep"] == 0  # each ended with its sleep


def run_oneshot(receiver: Receiver, **env: str) -> subprocess.CompletedProcess[str]:
    environment = child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol, **env
    )
    return subprocess.run(
        [sys.executable, "-m", "otel_asyncres", "run", str(ONESHOT)],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("receiver_type", [GrpcReceiver, HttpReceiver], ids=["grpc", "http"])
def test_metrics_arrive_over_otlp_beside_the_traces(receiver_type):
    with receiver_type() as receiver:
        result = run_oneshot(receiver)
        assert result.returncode == 0, result.stderr
        metrics = receiver.metrics()
    assert set(INSTRUMENTS) <= set(metrics), sorted(metrics)
    assert {name: metrics[name][-1].unit for name in INSTRUMENTS} == INSTRUMENTS
    spawned = metrics["asyncio.task.spawned"][-1].sum.data_points
    assert [p.as_int for p in spawned] == [4]  # main, tokio-oneshot, receiver, sender
    assert {attributes(p.attributes)["asyncio.task.kind"] for p in spawned} == {"task"}
    waits = metrics["asyncio.async_op.duration"][-1].histogram.data_points
    sources = {attributes(p.attributes)["asyncio.async_op.source"] for p in waits}
    assert {"Future.__await__", "sleep", "Task.__await__"} <= sources
    resource = {
        attributes(rm.resource.attributes).get("service.name")
        for rm in receiver.metric_requests[-1].resource_metrics
    }
    assert resource == {"oneshot"}
    assert receiver.spans(), "the traces went there too"


@pytest.mark.parametrize("receiver_type", [GrpcReceiver, HttpReceiver], ids=["grpc", "http"])
def test_a_traces_only_backend_gets_the_traces_and_one_line_about_metrics(receiver_type):
    """Jaeger and Tempo take no metrics: the traces go through, and the exit
    summary says what to do, in one line, instead of an export failure."""
    with receiver_type(metrics=False) as receiver:
        result = run_oneshot(receiver)
        spans = receiver.spans()
    assert result.returncode == 0, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("otel-asyncres:")]
    assert len(ours) == 2, result.stderr
    assert ours[0].startswith(f"otel-asyncres: {len(spans)} spans exported to ")
    assert "takes no metrics" in ours[1] and "OTEL_METRICS_EXPORTER=none" in ours[1]
    assert len(result.stderr.splitlines()) == 2, result.stderr  # nothing else: no exporter noise


def test_otel_metrics_exporter_none_is_honoured():
    with GrpcReceiver(metrics=False) as receiver:
        result = run_oneshot(receiver, OTEL_METRICS_EXPORTER="none")
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "spans exported to" in result.stderr


def test_metrics_off():
    with GrpcReceiver() as receiver:
        result = run_oneshot(receiver, OTEL_ASYNCRES_METRICS="false")
        assert result.returncode == 0, result.stderr
        assert receiver.metrics() == {}
        assert receiver.spans()
