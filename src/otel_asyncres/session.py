"""One instrumentation session: sources → recorder → bridge → TracerProvider.

``instrument()`` builds it, ``uninstrument()`` takes it down. The provider is
the one passed in, else the application's global SDK provider, else one built
from the configuration (the console view when nothing is configured), which
the session then owns and shuts down.
"""

from __future__ import annotations

import atexit
import sys
import threading
from typing import Any, TextIO

from opentelemetry import trace

from .bridge import BridgeOptions, SpanBridge
from .config import Settings, load_settings, sdk_disabled
from .export.setup import Export, ExporterLog, build_tracer_provider
from .instrumentation import Instrumentation
from .recorder import Recorder
from .sampling import Prestarted, root_sampler
from .version import __version__

#: How long exit waits for the exporters (a dead collector must not hang exit).
EXIT_FLUSH_MILLIS = 10000


class Session:
    def __init__(
        self,
        settings: Settings,
        tracer_provider: Any = None,
        default_service_name: str | None = None,
        console_stream: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.export = Export()
        if tracer_provider is None:
            tracer_provider = _application_provider()
        self.owns_provider = tracer_provider is None
        if tracer_provider is None:
            tracer_provider, self.export = build_tracer_provider(
                settings, default_service_name, console_stream
            )
        self.provider = tracer_provider
        self._exporter_log = ExporterLog(self.export.reporters)
        tracer = tracer_provider.get_tracer("otel_asyncres", __version__)
        prestarted: Prestarted = {}
        self.bridge = SpanBridge(tracer, bridge_options(settings), prestarted)
        self.bridge.dropped_spans = self.export.dropped_since_last_asked
        self.recorder = Recorder([self.bridge])
        self.instrumentation = Instrumentation(self.recorder, future_subclass=settings.futures == "subclass")
        self.instrumentation.tasks.sample_root = root_sampler(tracer_provider, tracer, prestarted)
        self._closed = False
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.export.reporters:
            self._exporter_log.attach()
        self.instrumentation.install()
        self.recorder.start()

    def flush(self, timeout_millis: int = EXIT_FLUSH_MILLIS) -> None:
        """Everything recorded so far, handed to the provider and exported."""
        self.recorder.flush()
        force_flush = getattr(self.provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)

    def close(self, report: TextIO | None = None) -> None:
        """Restore asyncio, end what is open, export it; once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.instrumentation.uninstall()
        self.recorder.close()
        if self.owns_provider:
            self.provider.force_flush(EXIT_FLUSH_MILLIS)
            self.provider.shutdown()
        else:
            force_flush = getattr(self.provider, "force_flush", None)
            if force_flush is not None:
                force_flush(EXIT_FLUSH_MILLIS)
        self._exporter_log.detach()
        self._report(report or sys.stderr)

    def _report(self, stream: TextIO) -> None:
        lines = self.export.summaries()
        shed = self.instrumentation.tasks.shed
        if shed:
            lines.append(
                f"otel-asyncres: {shed} tasks were not recorded: they were spawned while the "
                "recorder was behind (the exporter could not keep up)"
            )
        errors = {**self.recorder.errors}
        if self.bridge.errors:
            errors["bridge"] = self.bridge.errors
        if errors:
            lines.append(
                "otel-asyncres: internal errors (counted, not raised): "
                + ", ".join(f"{k}={v}" for k, v in sorted(errors.items()))
            )
        try:
            for line in lines:
                stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def bridge_options(settings: Settings) -> BridgeOptions:
    return BridgeOptions(
        op_parent=settings.op_parent,
        op_poll_spans=settings.op_poll_spans,
        internal_tasks=settings.internal,
        internal_resources=settings.internal,
        detail=settings.detail,
        min_task_ns=int(settings.min_task_duration * 1e9),
        min_wait_ns=int(settings.min_wait_duration * 1e9),
        window_ns=int(settings.window_duration * 1e9),
        window_events=settings.window_events,
    )


def _application_provider() -> Any:
    """The application's global provider, if it has set one."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        return None
    return provider


_session: Session | None = None
_session_lock = threading.Lock()
_atexit_registered = False


def instrument(tracer_provider: Any = None, **options: Any) -> None:
    """Instrument asyncio in this process: every loop, existing and future.

    ``tracer_provider``: where spans go; by default the application's global
    SDK provider, else one configured from the environment (OTLP when an
    endpoint is set, otherwise the console view printed at exit). Other
    options: see ``otel_asyncres.config``. A second call is a no-op.
    """
    if sdk_disabled():  # OTEL_SDK_DISABLED=true: everything off, this included
        return
    exporting = tracer_provider is None and _application_provider() is None
    settings = load_settings(options, exporting=exporting)
    with _session_lock:
        if _session is None:
            activate(Session(settings, tracer_provider))


def activate(session: Session) -> None:
    """Make ``session`` the process's instrumentation (the caller holds no
    other session); it is closed by ``uninstrument()`` or at exit."""
    global _session, _atexit_registered
    session.start()
    _session = session
    if not _atexit_registered:
        atexit.register(uninstrument)
        _atexit_registered = True


def uninstrument() -> None:
    """Restore asyncio exactly and export everything recorded."""
    global _session
    with _session_lock:
        session, _session = _session, None
    if session is not None:
        session.close()


def flush(timeout_millis: int = EXIT_FLUSH_MILLIS) -> None:
    """Export what has been recorded so far (spans still open stay open)."""
    session = _session
    if session is not None:
        session.flush(timeout_millis)


def current_session() -> Session | None:
    return _session
