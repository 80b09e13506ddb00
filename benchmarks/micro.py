"""Micro-benchmarks run in a child process: the bridge's share of a span's cost,
and the memory held per live task and per live resource.

``bridge_split``: a workload is run once instrumented while a second sink keeps
every record; then the same records are fed to fresh ``SpanBridge`` instances
with (a) OpenTelemetry's no-op tracer, which costs the bridge's own work plus
no-op API calls, (b) an SDK tracer whose only span processor counts and drops
the spans, and (c) no bridge at all: as many bare SDK ``start_span``/``end``
pairs as (b) ended spans. Per span: bridge = (a), SDK = (b) - (a).

``memory_per_entity``: tracemalloc, 10,000 tasks parked on one Event, then
10,000 Locks each held, measured against a snapshot before, grouped by the
package that allocated the memory; and what is left once they are gone.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any


class _KeepRecords:
    """A recorder sink that keeps every record. Self-contained (not a
    ``recorder.Dispatcher``): ``--commit`` runs it against older src/ trees."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def consume(self, records: Sequence[Any]) -> None:
        self.records.extend(records)

    def tick(self, now: int) -> None:
        pass

    def flush(self, final: bool = False) -> None:
        pass

    def shutdown(self) -> None:
        pass


def record(workload_name: str, scale: float) -> list[Any]:
    """The records of one instrumented run of a workload."""
    from opentelemetry.sdk.trace import TracerProvider

    import otel_asyncres
    from otel_asyncres.session import current_session

    from .workloads import WORKLOADS

    otel_asyncres.instrument(tracer_provider=TracerProvider(shutdown_on_exit=False))
    session = current_session()
    assert session is not None
    sink = _KeepRecords()
    session.recorder.add_sink(sink)
    try:
        asyncio.run(WORKLOADS[workload_name].run(scale))
        otel_asyncres.flush()
    finally:
        otel_asyncres.uninstrument()
    return sink.records


def bridge_split(spec: dict[str, Any]) -> dict[str, Any]:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.trace import NoOpTracer

    from otel_asyncres.bridge import BridgeOptions, SpanBridge

    class DropProcessor(SpanProcessor):
        def __init__(self) -> None:
            self.ended = 0

        def on_end(self, span: ReadableSpan) -> None:
            self.ended += 1

    records = record(spec["workload"], float(spec.get("scale", 1.0)))
    try:  # the options instrument() uses by default
        from otel_asyncres.config import load_settings
        from otel_asyncres.session import bridge_options

        options = bridge_options(load_settings({}, environ={}))
    except ImportError:  # older versions
        options = BridgeOptions()

    def through_bridge(tracer: Any) -> tuple[float, int]:
        bridge = SpanBridge(tracer, options)
        gc.collect()
        started = time.perf_counter()
        for i in range(0, len(records), 4096):
            bridge.consume(records[i : i + 4096])
        bridge.flush(final=True)
        return time.perf_counter() - started, bridge.errors

    def bare_sdk(tracer: Any, n: int) -> float:
        parent = Context()
        ts = time.time_ns()
        gc.collect()
        started = time.perf_counter()
        for _ in range(n):
            tracer.start_span("task bare", context=parent, start_time=ts).end(end_time=ts)
        return time.perf_counter() - started

    noop_times, sdk_times, bare_times = [], [], []
    spans = errors = 0
    for _ in range(int(spec.get("repeats", 5))):
        seconds, errors = through_bridge(NoOpTracer())
        noop_times.append(seconds)
        provider = TracerProvider(shutdown_on_exit=False)
        dropper = DropProcessor()
        provider.add_span_processor(dropper)
        seconds, _ = through_bridge(provider.get_tracer("otel_asyncres"))
        sdk_times.append(seconds)
        spans = dropper.ended
        bare_provider = TracerProvider(shutdown_on_exit=False)
        bare_provider.add_span_processor(DropProcessor())
        bare_times.append(bare_sdk(bare_provider.get_tracer("bare"), spans))
    noop, sdk, bare = (statistics.median(t) for t in (noop_times, sdk_times, bare_times))
    per = 1e6 / max(spans, 1)
    return {
        "workload": spec["workload"],
        "scale": spec.get("scale", 1.0),
        "records": len(records),
        "spans": spans,
        "bridge_errors": errors,
        "noop_seconds": noop_times,
        "sdk_seconds": sdk_times,
        "bare_seconds": bare_times,
        "bridge_us_per_span": noop * per,
        "sdk_us_per_span": (sdk - noop) * per,
        "bare_sdk_us_per_span": bare * per,
        "bridge_share_of_sdk": noop / (sdk - noop) if sdk > noop else None,
    }


def _group(filename: str) -> str:
    if "/otel_asyncres/" in filename:
        return "otel_asyncres"
    if "/opentelemetry/" in filename:
        return "opentelemetry"
    if "/asyncio/" in filename:
        return "asyncio"
    return "other"


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<unknown>")]
    )


def _diff(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, int]:
    out = {"otel_asyncres": 0, "opentelemetry": 0, "asyncio": 0, "other": 0}
    for stat in after.compare_to(before, "filename"):
        out[_group(stat.traceback[0].filename)] += stat.size_diff
    out["total"] = sum(out.values())
    return out


def memory_per_entity(spec: dict[str, Any]) -> dict[str, Any]:
    from .modes import MODES, Setup

    n = int(spec.get("n", 10000))
    setup = Setup(MODES[spec["mode"]])
    result: dict[str, Any] = {"mode": spec["mode"], "n": n}

    async def settle() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        setup.flush()
        gc.collect()

    async def main() -> None:
        event = asyncio.Event()

        async def parked() -> None:
            await event.wait()

        # Warm up every path once, so lazily built structures are in the baseline.
        warm = [asyncio.create_task(parked()) for _ in range(100)]
        warm_locks = [asyncio.Lock() for _ in range(100)]
        for lock in warm_locks:
            await lock.acquire()
        await settle()
        event.set()
        await asyncio.gather(*warm)
        for lock in warm_locks:
            lock.release()
        del warm, warm_locks, lock
        event = asyncio.Event()
        await settle()

        base = _snapshot()
        tasks = [asyncio.create_task(parked()) for _ in range(n)]
        await settle()
        result["live_tasks"] = _diff(base, _snapshot())
        event.set()
        await asyncio.gather(*tasks)
        del tasks
        await settle()
        result["after_tasks"] = _diff(base, _snapshot())

        base = _snapshot()
        locks = [asyncio.Lock() for _ in range(n)]
        for lock in locks:
            await lock.acquire()
        await settle()
        result["live_locks"] = _diff(base, _snapshot())
        for lock in locks:
            lock.release()
        del locks, lock
        await settle()
        result["after_locks"] = _diff(base, _snapshot())

    tracemalloc.start()
    try:
        asyncio.run(main())
    finally:
        tracemalloc.stop()
        setup.close()
    return result
