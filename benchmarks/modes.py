"""The measured configurations ("modes") and how a child process sets one up.

To add a mode (a new detail level, say), add a ``Mode`` to ``MODES``: which
instrumentation, which sampler, which exporter, and the keyword arguments of
``otel_asyncres.instrument()``. Everything else (scheduling, ratios, the
table) follows from the table.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The BatchSpanProcessor's queue in the exporting modes: large, so that
#: nothing is dropped and the flush at the end of a run waits for the export
#: of everything the run produced (``--bsp-queue 0`` uses the SDK's default).
DEFAULT_BSP_QUEUE = 1 << 22


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    #: None (plain), "otel_asyncres" or "otel_asyncio".
    instrumentation: str | None = None
    #: "always_off" or None (the SDK's default sampler).
    sampler: str | None = None
    #: None (no span processor), "null" (a BatchSpanProcessor to an exporter
    #: that drops what it gets) or "otlp" (BatchSpanProcessor, OTLP over gRPC to
    #: the harness's receiver process).
    exporter: str | None = None
    #: Keyword arguments of ``otel_asyncres.instrument()``.
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Part of the default run (``--modes`` selects any).
    default: bool = True

    @property
    def needs_receiver(self) -> bool:
        return self.exporter == "otlp"


MODES: dict[str, Mode] = {
    m.name: m
    for m in [
        Mode("plain", "no instrumentation"),
        Mode(
            "sampled-out",
            "otel_asyncres.instrument() with TracerProvider(sampler=ALWAYS_OFF)",
            "otel_asyncres",
            sampler="always_off",
        ),
        Mode(
            "export-null",
            "otel_asyncres, default options, BatchSpanProcessor to an exporter that drops spans",
            "otel_asyncres",
            exporter="null",
            default=False,
        ),
        Mode(
            "export",
            "otel_asyncres, default options, BatchSpanProcessor + OTLP/gRPC to a receiver process",
            "otel_asyncres",
            exporter="otlp",
        ),
        Mode(
            "detailed",
            "as export, with every option that adds detail on (detail=all: no budget, a poll span "
            "per poll; internal)",
            "otel_asyncres",
            exporter="otlp",
            options={"detail": "all", "op_poll_spans": True, "internal": True},
        ),
        Mode(
            "otel-asyncio",
            "opentelemetry-instrumentation-asyncio tracing the workload's coroutines, exported as export",
            "otel_asyncio",
            exporter="otlp",
        ),
    ]
}

BASELINE = "plain"


def otel_asyncio_available() -> str | None:
    """None if opentelemetry-instrumentation-asyncio can be imported, else why not."""
    try:
        from opentelemetry.instrumentation.asyncio import AsyncioInstrumentor  # noqa: F401
    except Exception as exc:  # ImportError, or a version conflict at import
        return f"opentelemetry-instrumentation-asyncio not importable ({type(exc).__name__}: {exc})"
    return None


# -- in the child process ----------------------------------------------------------------------


def _sdk() -> Any:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class CountingProcessor(SpanProcessor):
        """Counts the spans that end (and so reach the BatchSpanProcessor)."""

        def __init__(self) -> None:
            self.ended = 0

        def on_end(self, span: ReadableSpan) -> None:
            self.ended += 1

    class CountingExporter(SpanExporter):
        """Counts what its inner exporter accepted and refused, and the time it took."""

        def __init__(self, inner: SpanExporter | None) -> None:
            self.inner = inner
            self.exported = 0
            self.failed = 0
            self.seconds = 0.0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            if self.inner is None:
                self.exported += len(spans)
                return SpanExportResult.SUCCESS
            started = time.perf_counter()
            try:
                result = self.inner.export(spans)
            except Exception:
                result = SpanExportResult.FAILURE
            self.seconds += time.perf_counter() - started
            if result is SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
            return result

        def shutdown(self) -> None:
            if self.inner is not None:
                self.inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    return CountingProcessor, CountingExporter


class Setup:
    """A mode, set up in this process: ``flush()`` after each run, ``counts()``, ``close()``."""

    def __init__(
        self,
        mode: Mode,
        endpoint: str | None = None,
        coroutines: Sequence[str] = (),
        bsp_queue: int = DEFAULT_BSP_QUEUE,
    ) -> None:
        self.mode = mode
        self.provider: Any = None
        self.counter: Any = None
        self.exporter: Any = None
        if mode.instrumentation is None:
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        counting_processor, counting_exporter = _sdk()
        resource = Resource.create({"service.name": "otel-asyncres-benchmark"})
        sampler = ALWAYS_OFF if mode.sampler == "always_off" else None
        self.provider = TracerProvider(resource=resource, sampler=sampler, shutdown_on_exit=False)
        if mode.exporter is not None:
            inner = None
            if mode.exporter == "otlp":
                if endpoint is None:
                    raise ValueError(f"mode {mode.name} needs the receiver's endpoint")
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

                inner = OTLPSpanExporter(endpoint=endpoint, insecure=True)
            self.counter = counting_processor()
            self.exporter = counting_exporter(inner)
            self.provider.add_span_processor(self.counter)
            self.provider.add_span_processor(
                BatchSpanProcessor(self.exporter, max_queue_size=bsp_queue or None)
            )
        if mode.instrumentation == "otel_asyncres":
            import otel_asyncres

            otel_asyncres.instrument(tracer_provider=self.provider, **dict(mode.options))
        elif mode.instrumentation == "otel_asyncio":
            os.environ["OTEL_PYTHON_ASYNCIO_COROUTINE_NAMES_TO_TRACE"] = ",".join(coroutines)
            from opentelemetry.instrumentation.asyncio import AsyncioInstrumentor

            self._asyncio_instrumentor = AsyncioInstrumentor()
            self._asyncio_instrumentor.instrument(tracer_provider=self.provider)
        else:
            raise ValueError(f"unknown instrumentation {mode.instrumentation!r}")

    def flush(self) -> None:
        """Everything the run recorded, turned into spans and exported."""
        if self.mode.instrumentation == "otel_asyncres":
            import otel_asyncres

            otel_asyncres.flush(timeout_millis=3_600_000)
        elif self.provider is not None:
            self.provider.force_flush(3_600_000)

    def counts(self) -> dict[str, float]:
        if self.exporter is None:
            return {"ended": 0, "exported": 0, "failed": 0, "export_seconds": 0.0}
        return {
            "ended": self.counter.ended,
            "exported": self.exporter.exported,
            "failed": self.exporter.failed,
            "export_seconds": self.exporter.seconds,
        }

    def internal_errors(self) -> dict[str, int]:
        """otel_asyncres's own counted failures, if any."""
        if self.mode.instrumentation != "otel_asyncres":
            return {}
        try:
            from otel_asyncres.session import current_session

            session = current_session()
            if session is None:
                return {}
            return dict(session.handoff.errors)
        except Exception as exc:  # internal API: report, don't fail the benchmark
            return {f"unreadable ({type(exc).__name__})": 1}

    def handoff_dropped(self) -> int:
        """Entities otel_asyncres folded because its hand-off was full."""
        if self.mode.instrumentation != "otel_asyncres":
            return 0
        try:
            from otel_asyncres.session import current_session

            session = current_session()
            return sum(session.handoff.dropped.values()) if session is not None else 0
        except Exception:
            return 0

    def close(self) -> None:
        if self.mode.instrumentation == "otel_asyncres":
            import otel_asyncres

            otel_asyncres.uninstrument()
        elif self.mode.instrumentation == "otel_asyncio":
            self._asyncio_instrumentor.uninstrument()
        if self.provider is not None:
            self.provider.shutdown()
