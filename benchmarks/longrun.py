"""The long run: a server-like program, instrumented and exported, for as long as asked.

Issue 4 is done when "a program that runs for an hour shows its long-lived tasks
and resources in Jaeger within seconds of activity, with no event lost
silently and flat memory". This runs such a program and measures exactly
that, against a real OTLP/gRPC receiver in the same process:

- the program: an asyncio TCP echo server; clients connect at a steady rate,
  each connection handled under one long-lived ``Semaphore`` (a connection
  pool) and handing what it reads to one long-lived consumer task through one
  long-lived ``Queue``; a long-lived ticker task sleeps and counts;
- visibility: when the first span of each long-lived entity reached the
  receiver, after the program started (spans reach a backend when they end:
  this is what windows are for);
- loss: the ``dropped_events_count``, ``dropped_attributes_count`` and
  ``dropped_links_count`` OTLP carries on every received span, the windows
  received of each long-lived entity, and the session's own drop report;
- memory: the process's RSS and the instrumentation's live tasks, resources
  and open spans, sampled at a fixed interval.

It never asserts a time: it reports, as JSON (``--json``) and a summary::

    python -m benchmarks.longrun --minutes 60 --json /tmp/longrun.json

The receiver keeps counters, never the spans, so that its own memory stays
flat too (it shares the process whose RSS is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from .workloads import echo_client

#: Long-lived entities, by the name of their span, whose windows are followed.
LONG_LIVED = ("task consumer", "task ticker", "resource asyncio.Semaphore", "resource asyncio.Queue")
MESSAGES = 5
#: What each client sends, a line at a time.
LINES = [f"message {n}\n".encode() for n in range(MESSAGES)]


@dataclass
class Received:
    """What the receiver has seen: counters only."""

    spans: int = 0
    requests: int = 0
    dropped_events: int = 0
    dropped_attributes: int = 0
    dropped_links: int = 0
    #: Seconds after ``started`` when the first span of each long-lived entity arrived.
    first_seen: dict[str, float] = field(default_factory=dict)
    #: Windows received of each long-lived entity, and their events.
    windows: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, request: Any) -> None:
        now = time.monotonic() - self.started
        with self.lock:
            self.requests += 1
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self._span(span, now)

    def _span(self, span: Any, now: float) -> None:
        self.spans += 1
        self.dropped_events += span.dropped_events_count
        self.dropped_attributes += span.dropped_attributes_count
        self.dropped_links += span.dropped_links_count
        if span.name in LONG_LIVED:
            self.first_seen.setdefault(span.name, round(now, 2))
            self.windows[span.name] = self.windows.get(span.name, 0) + 1
            self.events[span.name] = self.events.get(span.name, 0) + len(span.events)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "spans": self.spans,
                "requests": self.requests,
                "dropped_events": self.dropped_events,
                "dropped_attributes": self.dropped_attributes,
                "dropped_links": self.dropped_links,
                "first_seen_s": dict(self.first_seen),
                "windows": dict(self.windows),
                "events": dict(self.events),
            }


def start_receiver(received: Received) -> tuple[Any, int]:
    """An OTLP/gRPC trace receiver on 127.0.0.1 feeding ``received``."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.take(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


# -- the program -------------------------------------------------------------------------------


async def consumer(queue: asyncio.Queue[bytes], totals: dict[str, int]) -> None:
    while True:
        line = await queue.get()
        totals["consumed"] += len(line)


async def ticker(totals: dict[str, int]) -> None:
    while True:
        await asyncio.sleep(0.5)
        totals["ticks"] += 1


async def handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    pool: asyncio.Semaphore,
    queue: asyncio.Queue[bytes],
) -> None:
    async with pool:
        while line := await reader.readline():
            await queue.put(line)
            writer.write(line)
            await writer.drain()
    writer.close()
    await writer.wait_closed()


async def program(seconds: float, rate: int, sample: Any, every: float) -> dict[str, int]:
    """Serve for ``seconds``, ``rate`` client connections a second; call
    ``sample()`` every ``every`` seconds."""
    totals = {"consumed": 0, "ticks": 0, "connections": 0, "echoed": 0}
    pool = asyncio.Semaphore(8)
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)
    background = [asyncio.create_task(consumer(queue, totals)), asyncio.create_task(ticker(totals))]
    server = await asyncio.start_server(lambda r, w: handle(r, w, pool, queue), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    next_sample = loop.time() + every
    async with server:
        while loop.time() < end:
            results = await asyncio.gather(*(echo_client(port, LINES) for _ in range(rate)))
            totals["connections"] += len(results)
            totals["echoed"] += sum(results)
            await asyncio.sleep(max(0.0, 1.0 - (loop.time() % 1.0)))
            if loop.time() >= next_sample:
                next_sample += every
                sample()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    return totals


# -- measuring ---------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def live_counts() -> dict[str, int]:
    from otel_asyncres.session import current_session

    session = current_session()
    if session is None:
        return {}
    instrumentation = session.instrumentation
    return {
        "live_tasks": instrumentation.tasks.live_tasks(),
        "live_resources": instrumentation.resources.live_count(),
        "open_spans": session.bridge.open_spans(),
        "pending_entities": session.handoff.pending(),
        "handoff_dropped": sum(session.handoff.dropped.values()),
    }


def run(minutes: float, rate: int, every: float) -> dict[str, Any]:
    received = Received()
    server, port = start_receiver(received)
    os.environ.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "otel-asyncres-longrun",
        }
    )
    import otel_asyncres

    samples: list[dict[str, Any]] = []
    started = time.monotonic()

    def sample() -> None:
        samples.append(
            {
                "t_s": round(time.monotonic() - started, 1),
                "rss_mb": round(rss_mb(), 1),
                **live_counts(),
                "received_spans": received.spans,
            }
        )

    otel_asyncres.instrument()
    received.started = time.monotonic()
    try:
        totals = asyncio.run(program(minutes * 60, rate, sample, every))
    finally:
        otel_asyncres.uninstrument()  # flushes: what is still open ends, marked unfinished
    server.stop(grace=2).wait()
    return {
        "minutes": minutes,
        "rate": rate,
        "python": sys.version.split()[0],
        "program": totals,
        "expected_echoed": totals["connections"] * sum(map(len, LINES)),
        "long_lived": list(LONG_LIVED),
        "received": received.summary(),
        "samples": samples,
    }


def describe(result: dict[str, Any]) -> str:
    samples = result["samples"]
    received = result["received"]
    lines = [
        f"{result['minutes']} min, {result['program']['connections']} connections "
        f"({result['rate']}/s), echoed {result['program']['echoed']} of {result['expected_echoed']} bytes",
        f"spans received: {received['spans']}; dropped events/attributes/links on them: "
        f"{received['dropped_events']}/{received['dropped_attributes']}/{received['dropped_links']}",
        f"first span of each long-lived entity, seconds after start: {received['first_seen_s']}",
        f"windows received: {received['windows']}",
    ]
    if len(samples) >= 4:
        half = samples[len(samples) // 2 :]
        first, last = half[0], half[-1]
        lines.append(
            f"second half ({first['t_s']} s to {last['t_s']} s): "
            f"RSS {first['rss_mb']} -> {last['rss_mb']} MB "
            f"(min {min(s['rss_mb'] for s in half)}, max {max(s['rss_mb'] for s in half)}); "
            f"live tasks {first.get('live_tasks')} -> {last.get('live_tasks')}, "
            f"open spans {first.get('open_spans')} -> {last.get('open_spans')}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=20, help="client connections per second")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--json", help="write the whole result here")
    args = parser.parse_args(argv)
    result = run(args.minutes, args.rate, args.every)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    print(describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
