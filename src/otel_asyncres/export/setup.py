"""Building a TracerProvider from Settings, when the application has none.

OTLP goes through a BatchSpanProcessor, so the recorder's thread never waits on
the network; the console view through a SimpleSpanProcessor (its export is a
list append). Each exporter is wrapped in a ``ReportingExporter`` that counts
what went out and what was lost, so a collector that is down or misconfigured
is reported at exit instead of passing unnoticed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from ..config import Settings
from .console import ConsoleTreeExporter


class ReportingExporter(SpanExporter):
    """Counts exported and failed spans of the exporter it wraps."""

    def __init__(self, inner: SpanExporter, description: str) -> None:
        self.inner = inner
        self.description = description
        self.exported = 0
        self.failed = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        error: str | None
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the export thread
            result, error = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        else:
            error = None if result is SpanExportResult.SUCCESS else "the exporter reported failure"
        with self._lock:
            if error is None:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
                self.last_error = error
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def summary(self) -> str | None:
        """One line for stderr at exit, or None when there is nothing to say."""
        if self.failed:
            return (
                f"otel-asyncres: {self.failed} spans could not be exported to {self.description} "
                f"({self.exported} were): {self.last_error}"
            )
        if self.exported:
            return f"otel-asyncres: {self.exported} spans exported to {self.description}"
        return None


def otlp_exporter(settings: Settings) -> SpanExporter:
    """The OTLP exporter for the configured protocol and endpoint."""
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=settings.endpoint, insecure=settings.endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=settings.endpoint)


def resource_for(settings: Settings, default_service_name: str | None = None) -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME are read by the SDK's
    detector; an explicit service name wins, then the program's name."""
    resource = Resource.create({} if settings.service_name is None else {SERVICE_NAME: settings.service_name})
    unnamed = str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service")
    if settings.service_name is None and default_service_name is not None and unnamed:
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    return resource


def build_tracer_provider(
    settings: Settings, default_service_name: str | None = None, console_stream: TextIO | None = None
) -> tuple[TracerProvider, list[ReportingExporter]]:
    """A provider exporting as configured, and the reporters to ask at exit."""
    provider = TracerProvider(resource=resource_for(settings, default_service_name), shutdown_on_exit=False)
    reporters: list[ReportingExporter] = []
    for name in settings.exporters:
        if name == "console":
            console = ConsoleTreeExporter(stream=console_stream or sys.stderr)
            provider.add_span_processor(SimpleSpanProcessor(console))
        elif name == "otlp":
            reporter = ReportingExporter(
                otlp_exporter(settings), f"{settings.endpoint} ({settings.protocol})"
            )
            reporters.append(reporter)
            provider.add_span_processor(BatchSpanProcessor(reporter))
    return provider, reporters
