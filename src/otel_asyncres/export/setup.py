"""Building a TracerProvider from Settings, when the application has none.

OTLP goes through an ``ExportQueue``, so nobody waits on the network and a
collector that cannot keep up costs counted drops; the console view through a
SimpleSpanProcessor (its export is a list append). Each exporter is wrapped in
a ``ReportingExporter`` that counts what went out and what was lost, and hears
the exporter's own complaints, so a collector that is down or misconfigured is
reported at exit, in one line, instead of passing unnoticed.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Protocol, TextIO

from opentelemetry.sdk.resources import HOST_NAME, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from ..config import Settings
from .console import ConsoleTreeExporter
from .exit import GivesUp
from .queue import ExportQueue


class ReportingExporter(GivesUp, SpanExporter):
    """Counts exported and failed spans of the exporter it wraps."""

    #: The signal its exporter sends, to tell its complaints from the others'.
    signal = "traces"

    def __init__(self, inner: SpanExporter, description: str) -> None:
        self.inner = inner
        self.description = description
        self.exported = 0
        self.failed = 0
        self.last_error: str | None = None
        #: Told the reason of the first failure, when it happens: a collector
        #: that cannot be reached is said at once, not only at exit.
        self.on_first_failure: Callable[[str], None] | None = None
        self._said = False
        #: The first complaint the exporter logged during the export under way:
        #: it says why (its result only says that it failed; its last words
        #: after retries may be as vague: "timeout, max retries or shutdown").
        #: The SDK logs a repeated complaint once per 20 s, so a failure heard
        #: nothing about keeps the reason heard before.
        self._heard: str | None = None
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        error: str | None
        self._heard = None
        if self.given_up:
            with self._lock:
                self.failed += len(spans)
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the export thread
            result, error = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        else:
            failure = self._heard or self.last_error or "the exporter reported failure"
            error = None if result is SpanExportResult.SUCCESS else failure
        with self._lock:
            if error is None:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
                self.last_error = error
        if error is not None:
            self._say_first(error)
        return result

    def _say_first(self, reason: str) -> None:
        """The first failure (a failed attempt the exporter is retrying, or a
        failed export), said once, when it happens."""
        said, self._said = self._said, True
        if not said and self.on_first_failure is not None and not self.given_up:
            self.on_first_failure(f"otel-asyncres: cannot export to {self.description}: {reason}")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def complaint(self, message: str) -> None:
        """What the exporter logged about its last failure (see ExporterLog)."""
        self.last_error = message
        if self._heard is None:
            self._heard = message
        self._say_first(message)

    def summary(self, dropped: int = 0) -> str | None:
        """One line for stderr at exit, or None when there is nothing to say."""
        if self.failed or dropped:
            lost = self.failed + dropped
            why = self.last_error or "the export queue was full: the collector could not keep up"
            return (
                f"otel-asyncres: {lost} spans could not be exported to {self.description} "
                f"({self.exported} were): {why}"
            )
        if self.exported:
            return f"otel-asyncres: {self.exported} spans exported to {self.description}"
        return None


class ExporterLog(logging.Handler):
    """Hears the OTLP exporters' warnings ("Transient error ... retrying"). When
    the program has not set up logging, they would go to its stderr, one per
    retry: then they are kept for the summary line instead."""

    LOGGER = "opentelemetry.exporter"

    def __init__(self, reporters: Sequence[Complaining]) -> None:
        super().__init__(logging.WARNING)
        self.reporters = list(reporters)
        self._logger = logging.getLogger(self.LOGGER)
        self._propagated = self._logger.propagate

    def emit(self, record: logging.LogRecord) -> None:
        message = _reason(record.getMessage().split("\n", 1)[0])
        signal = _signal_of(record.name, message)
        for reporter in self.reporters:
            # Once given up at exit, the exporter only says that it was shut
            # down: the reason heard before is the one to keep.
            if (signal is None or reporter.signal == signal) and not reporter.given_up:
                reporter.complaint(message)

    def attach(self) -> None:
        self._logger.addHandler(self)
        if not logging.getLogger().handlers:
            self._logger.propagate = False

    def detach(self) -> None:
        self._logger.removeHandler(self)
        self._logger.propagate = self._propagated


class Complaining(Protocol):
    """A reporting exporter, as ExporterLog tells it what its exporter said."""

    signal: str
    given_up: bool

    def complaint(self, message: str) -> None: ...


_RETRYING = re.compile(r"^Transient error (.*?),? retrying in [\d.]+ ?s\.?(.*)$")


def _reason(message: str) -> str:
    """The cause in an exporter's complaint, without its retry chatter:
    "Transient error X encountered ..., retrying in 1.1s. Error details: Y"
    says "X encountered .... Error details: Y"."""
    retrying = _RETRYING.match(message)
    return f"{retrying[1]}.{retrying[2]}" if retrying else message


def _signal_of(logger: str, message: str) -> str | None:
    """Which signal's exporter logged this: the HTTP exporters log under a
    logger of their own, the gRPC ones share one and name the signal."""
    text = f"{logger} {message}".lower()
    if "metric" in text:
        return "metrics"
    if "trace" in text or "span" in text:
        return "traces"
    return None


def otlp_exporter(settings: Settings, timeout: float | None = None) -> SpanExporter:
    """The OTLP exporter for the configured protocol and endpoint; ``timeout``
    (seconds) overrides OTEL_EXPORTER_OTLP_TIMEOUT."""
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        insecure = settings.endpoint.startswith("http://")
        return GrpcExporter(endpoint=settings.endpoint, insecure=insecure, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=settings.endpoint, timeout=timeout)


#: The process tag by which Jaeger's v1 API tells hosts apart.
JAEGER_HOST_KEY = "ip"


def _host_address() -> str:
    """This host's address on its default route, found without a packet or a
    name lookup (connecting a UDP socket only picks the route); the loopback
    address where there is none."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never sent to
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def resource_for(settings: Settings, default_service_name: str | None = None) -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME are read by the SDK's
    detector; an explicit service name wins, then the program's name.

    ``host.name`` is this machine's unless configured: every span of a process
    has one clock, and a backend that finds no host on the resource (Jaeger's
    query service) takes each span for another host's and reports "clock skew"
    wherever a child outlives its parent (a resource its creator, a task's
    later window). Jaeger's v1 API, the one its UI reads, knows a host only
    by an ``ip`` process tag (what Jaeger's own clients sent): the resource
    carries it too, unless configured."""
    resource = Resource.create({} if settings.service_name is None else {SERVICE_NAME: settings.service_name})
    if HOST_NAME not in resource.attributes:
        resource = resource.merge(Resource({HOST_NAME: socket.gethostname()}))
    if JAEGER_HOST_KEY not in resource.attributes:
        resource = resource.merge(Resource({JAEGER_HOST_KEY: _host_address()}))
    unnamed = str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service")
    if settings.service_name is None and default_service_name is not None and unnamed:
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    return resource


class Export:
    """What a built provider exports through: reporters and their queues."""

    def __init__(self) -> None:
        self.reporters: list[ReportingExporter] = []
        self.queues: list[ExportQueue] = []
        #: The console view, printed by ``flush()`` too (the SDK's simple
        #: processor does not pass a flush on to its exporter).
        self.console: ConsoleTreeExporter | None = None

    def dropped_since_last_asked(self) -> int:
        return sum(q.dropped_since_last_asked() for q in self.queues)

    def summaries(self) -> list[str]:
        lines = (r.summary(q.dropped) for r, q in zip(self.reporters, self.queues, strict=True))
        return [line for line in lines if line]


class PrivateRandomIdGenerator(RandomIdGenerator):
    """Random trace and span ids drawn from a generator of its own.

    The SDK's default draws from the ``random`` module's generator, the
    program's: every span moved the program's random sequence (a program that
    seeds ``random`` drew other numbers when instrumented), and a program that
    seeds it again (regrtest does, before every test file) made the ids repeat
    (spans of different CPython test files shared trace and span ids, some
    were their own parent, and the console view died of recursion)."""

    def __init__(self) -> None:
        self._random = random.Random()  # seeded from os.urandom
        _reseed_after_fork.add(self._random)

    def generate_span_id(self) -> int:
        span_id = self._random.getrandbits(64)
        while span_id == 0:  # INVALID_SPAN_ID
            span_id = self._random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = self._random.getrandbits(128)
        while trace_id == 0:  # INVALID_TRACE_ID
            trace_id = self._random.getrandbits(128)
        return trace_id


#: A forked child must not draw the ids its parent draws (the ``random``
#: module reseeds its own generator in the child the same way).
_reseed_after_fork: weakref.WeakSet[random.Random] = weakref.WeakSet()


def _reseed() -> None:
    for generator in list(_reseed_after_fork):
        generator.seed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def build_tracer_provider(
    settings: Settings, default_service_name: str | None = None, console_stream: TextIO | None = None
) -> tuple[TracerProvider, Export]:
    """A provider exporting as configured, and what to ask at exit."""
    provider = TracerProvider(
        resource=resource_for(settings, default_service_name),
        shutdown_on_exit=False,
        id_generator=PrivateRandomIdGenerator(),
    )
    export = Export()
    for name in settings.exporters:
        if name == "console":
            console = export.console = ConsoleTreeExporter(stream=console_stream or sys.stderr)
            provider.add_span_processor(SimpleSpanProcessor(console))
        elif name == "otlp":
            reporter = ReportingExporter(
                otlp_exporter(settings), f"{settings.endpoint} ({settings.protocol})"
            )
            limits = settings.export_queue
            queue = ExportQueue(
                reporter, limits.max_queue_size, limits.max_export_batch_size, limits.schedule_delay
            )
            export.reporters.append(reporter)
            export.queues.append(queue)
            provider.add_span_processor(queue)
    return provider, export
