"""The MeterProvider for runtime metrics, when the application has none.

It exports over OTLP next to the traces, with the same protocol: the
endpoint is the traces' one with ``/v1/metrics`` for ``/v1/traces`` over
HTTP, unless ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` names one;
``OTEL_METRICS_EXPORTER=none`` (or an exporter other than ``otlp``) means none
of ours. Everything else (``OTEL_METRIC_EXPORT_INTERVAL``, headers, timeouts,
compression) is the SDK's to read, as for any OpenTelemetry program.

Jaeger and Grafana Tempo take traces only: sent straight to them, metrics are
refused ("unimplemented", 404), which the exit summary says in those words,
with what to do about it, rather than as an export failure.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from ..config import Settings
from .exit import GivesUp

_TRACES_PATH = "/v1/traces"


def metrics_wanted(environ: Any = None) -> bool:
    """Whether OTEL_METRICS_EXPORTER leaves OTLP metrics to us (unset: yes)."""
    env = os.environ if environ is None else environ
    names = [n.strip().lower() for n in (env.get("OTEL_METRICS_EXPORTER") or "otlp").split(",")]
    return "otlp" in names


#: What an OTLP endpoint that takes no metrics answers (gRPC, HTTP).
_REFUSED = re.compile(r"UNIMPLEMENTED|\b404\b|Not Found", re.IGNORECASE)


def metrics_endpoint(settings: Settings, environ: Any = None) -> str:
    env = os.environ if environ is None else environ
    specific = (env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or "").strip()
    if specific:
        return specific
    endpoint = settings.endpoint
    if settings.protocol == "http/protobuf" and endpoint.endswith(_TRACES_PATH):
        return endpoint[: -len(_TRACES_PATH)] + "/v1/metrics"
    return endpoint


def otlp_metric_exporter(settings: Settings) -> MetricExporter:
    endpoint = metrics_endpoint(settings)
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    return Http(endpoint=endpoint)


class ReportingMetricExporter(GivesUp, MetricExporter):
    """Counts the metric exports that failed, and hears why (see ExporterLog),
    so that a collector that takes no metrics is one line at exit."""

    signal = "metrics"

    def __init__(self, inner: MetricExporter, description: str) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.description = description
        self.exports = 0
        self.failed = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self.given_up:
            result = MetricExportResult.FAILURE
        else:
            result = self._export(metrics_data, timeout_millis, **kwargs)
        with self._lock:
            self.exports += 1
            if result is not MetricExportResult.SUCCESS:
                self.failed += 1
        return result

    def _export(self, metrics_data: MetricsData, timeout_millis: float, **kwargs: Any) -> MetricExportResult:
        try:
            return self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:  # an exporter bug must not kill the reader's thread
            self.last_error = f"{type(exc).__name__}: {exc}"
            return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    def complaint(self, message: str) -> None:
        self.last_error = message

    def summary(self) -> str | None:
        if not self.failed:
            return None
        why = self.last_error or (
            "the export at exit ran out of time" if self.given_up else "the exporter reported failure"
        )
        if _REFUSED.search(why):
            return (
                f"otel-asyncres: {self.description} takes no metrics (Jaeger and Tempo take only "
                "traces): set OTEL_METRICS_EXPORTER=none, or send to an OpenTelemetry Collector"
            )
        exports = f"{self.failed} of {self.exports} metric exports"
        return f"otel-asyncres: {exports} to {self.description} failed: {why}"


def build_meter_provider(
    settings: Settings, resource: Resource
) -> tuple[MeterProvider, ReportingMetricExporter]:
    """A provider exporting over OTLP as configured, and its reporter."""
    description = f"{metrics_endpoint(settings)} ({settings.protocol})"
    reporter = ReportingMetricExporter(otlp_metric_exporter(settings), description)
    reader = PeriodicExportingMetricReader(reporter)
    return MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False), reporter
