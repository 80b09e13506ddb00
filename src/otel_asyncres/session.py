"""One instrumentation session: sources -> state on the loop -> hand-off -> bridge -> TracerProvider.

``instrument()`` builds it, ``uninstrument()`` takes it down. The provider is
the one passed in, else the application's global SDK provider, else one built
from the configuration (the console view when nothing is configured), which
the session then owns and shuts down. Every knob is resolved from
``Settings`` here and passed to the constructors that use it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from opentelemetry import metrics, trace

from .bridge import BridgeOptions, SpanBridge
from .config import Settings, load_settings, sdk_disabled
from .diagnostics import Deadlock, LintOptions
from .export.exit import ExitDeadline, GivesUp
from .export.setup import Export, ExporterLog, build_tracer_provider, resource_for
from .handoff import Handoff
from .instrumentation import Instrumentation, Sources
from .sampling import Prestarted, root_sampler
from .showing import Budget, Policy
from .version import __version__

if TYPE_CHECKING:  # the metrics SDK is imported only for a MeterProvider of our own (OTLP)
    from .export.metrics import ReportingMetricExporter

#: How long exit waits for the exporters (a dead collector must not hang exit).
EXIT_FLUSH_MILLIS = 10000

# Diagnostics and internal errors are logged to "otel_asyncres" (by the
# hand-off, the diagnostics and the instrumentor: all of them come with the
# session, and the launcher, which imports the package, need not import
# logging); an application that has not configured logging sees them in its
# traces and the exit summary, not as stray lines on its stderr.
logging.getLogger("otel_asyncres").addHandler(logging.NullHandler())


class Session:
    def __init__(
        self,
        settings: Settings,
        tracer_provider: Any = None,
        default_service_name: str | None = None,
        console_stream: TextIO | None = None,
        meter_provider: Any = None,
        on_deadlock: Callable[[Deadlock], Any] | None = None,
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
        for reporter in self.export.reporters:
            reporter.on_first_failure = self._say_export_fails
        tracer = tracer_provider.get_tracer("otel_asyncres", __version__)
        self.handoff = Handoff()
        options = bridge_options(settings, _event_limit(tracer_provider))
        self.policy = Policy(
            self.handoff,
            Budget(settings.budget or 0.0),
            options.window_events,
            everything=settings.detail == "all",
            min_task_ns=int(settings.min_task_duration * 1e9),
            min_wait_ns=int(settings.min_wait_duration * 1e9),
        )
        prestarted: Prestarted = {}
        self.bridge = SpanBridge(tracer, options, prestarted, self.handoff.take_unreported_drops)
        self.bridge.dropped_spans = self.export.dropped_since_last_asked
        self.handoff.add_consumer(self.bridge)
        self.meter_provider, self.metrics_reporter = _meter_provider(
            settings, meter_provider, self.owns_provider, default_service_name
        )
        if self.metrics_reporter is not None:
            self._exporter_log.reporters.append(self.metrics_reporter)
        self.instrumentation = Instrumentation(
            self.handoff, self.policy, sources_of(settings), lint_options(settings, on_deadlock)
        )
        if self.meter_provider is not None:
            self._add_metrics(self.meter_provider.get_meter("otel_asyncres", __version__))
        tasks = self.instrumentation.tasks
        tasks.sample_root = root_sampler(tracer_provider, tracer, prestarted)
        tasks.prestarted = prestarted
        self.handoff.add_ticker(tasks.poke)
        self._closed = False
        self._lock = threading.Lock()
        #: Bounds the export at exit (a watcher thread, made at ``start``).
        self._exit_deadline = ExitDeadline(())

    def _add_metrics(self, meter: Any) -> None:
        from .bridge.metrics import RuntimeMetrics

        instrumentation = self.instrumentation
        lints = instrumentation.lints
        metrics = RuntimeMetrics(
            meter,
            instrumentation.tasks.live,
            instrumentation.resources.live,
            (lambda: lints.counts) if lints is not None else dict,
            lambda: dict(self.handoff.dropped),
        )
        instrumentation.tasks.metrics = instrumentation.ops.metrics = instrumentation.resources.metrics = (
            metrics
        )
        self.handoff.add_consumer(metrics)

    def start(self) -> None:
        self._exit_deadline = ExitDeadline(self._exporters())
        if self.export.reporters:
            self._exporter_log.attach()
        self.instrumentation.install()
        self.handoff.start()

    def flush(self, timeout_millis: int = EXIT_FLUSH_MILLIS) -> None:
        """Everything shown so far, handed to the provider and exported."""
        self.handoff.flush()
        _force_flush(self.provider, timeout_millis)
        if self.export.console is not None:
            self.export.console.force_flush()
        if self.meter_provider is not None:
            _force_flush(self.meter_provider, timeout_millis)

    def close(self, report: TextIO | None = None) -> None:
        """Restore asyncio, end what is open, export it; once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.instrumentation.uninstall()
        try:
            self.instrumentation.finish()
        except Exception as exc:
            self.handoff.count_error("finish", exc)
        limit = self.settings.export_queue.exit_timeout
        self._exit_deadline.arm(limit)
        try:
            self.handoff.close()
            _force_flush(self.provider, int(limit * 1000))
            if self.owns_provider:
                self.provider.shutdown()
            if self.meter_provider is not None:
                _force_flush(self.meter_provider, int(limit * 1000))
                if self.metrics_reporter is not None:  # made here
                    self.meter_provider.shutdown()
        finally:
            self._exit_deadline.done()
        self._exporter_log.detach()
        self._report(report or sys.stderr)

    def _say_export_fails(self, line: str) -> None:
        """The first failed export, said when it happens (on the export's
        thread): the program goes on, and a user waiting for its exit knows why."""
        limit = self.settings.export_queue.exit_timeout
        with contextlib.suppress(Exception):  # a closed stderr must not break the export thread
            sys.stderr.write(
                f"{line} (the spans of a failed export are lost and counted; "
                f"at exit the export gives up after {limit:g} s)\n"
            )

    def _exporters(self) -> list[GivesUp]:
        """The exporters made here, which the exit deadline may give up."""
        made: list[GivesUp] = list(self.export.reporters)
        if self.metrics_reporter is not None:
            made.append(self.metrics_reporter)
        return made

    def _report(self, stream: TextIO) -> None:
        lines = self.export.summaries()
        metrics_summary = self.metrics_reporter.summary() if self.metrics_reporter is not None else None
        if metrics_summary:
            lines.append(metrics_summary)
        dropped = self.handoff.dropped
        if dropped:
            found = ", ".join(f"{n} {kind}s" for kind, n in sorted(dropped.items()))
            lines.append(
                f"otel-asyncres: {found} were folded instead of shown: the hand-off to the exporting "
                "side was full (the exporter could not keep up)"
            )
        folding = self.policy.summary()
        if folding:
            lines.append(folding)
        lints = self.instrumentation.lints
        counts = lints.counts if lints is not None else {}
        exporters = self.settings.exporters
        if counts and self.owns_provider and exporters and "console" not in exporters:  # the view has them
            found = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
            lines.append(f"otel-asyncres: diagnostics: {found} (events on the tasks' spans)")
        errors = dict(self.handoff.errors)
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


def sources_of(settings: Settings) -> Sources:
    """What the instrumentation follows, from the detail level and options."""
    everything = settings.detail == "all"
    return Sources(
        resources=settings.detail != "tasks",
        future_subclass=settings.futures == "subclass",
        ops_by_resource=settings.op_parent == "resource",
        poll_log=everything or bool(settings.op_poll_spans),
        internal=settings.internal,
    )


def lint_options(settings: Settings, on_deadlock: Callable[[Deadlock], Any] | None = None) -> LintOptions:
    """What the diagnostics look for."""
    return LintOptions(
        long_poll_ns=_nanoseconds(settings.long_poll_threshold),
        self_wake_ratio=settings.self_wake_ratio,
        long_wait_ns=_nanoseconds(settings.long_wait_threshold),
        lost_wakers=settings.lost_wakers,
        deadlocks=settings.deadlocks,
        on_deadlock=on_deadlock,
        log=settings.log_diagnostics,
    )


def _meter_provider(
    settings: Settings, given: Any, owns_tracing: bool, default_service_name: str | None
) -> tuple[Any, ReportingMetricExporter | None]:
    """Where runtime metrics go: the provider given, else the application's,
    else (when the session exports its own traces over OTLP) one of its own
    beside them, with its reporter; else nowhere."""
    if not settings.metrics:
        return None, None
    provider = given if given is not None else _application_meter_provider()
    if provider is not None:
        return provider, None
    if owns_tracing and "otlp" in settings.exporters:
        from .export.metrics import build_meter_provider, metrics_wanted  # the metrics SDK, only for this

        if metrics_wanted():
            return build_meter_provider(settings, resource_for(settings, default_service_name))
    return None, None


def _force_flush(provider: Any, timeout_millis: int = EXIT_FLUSH_MILLIS) -> None:
    """A provider's force_flush, if it has one (the API's no-op ones do not)."""
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_millis)


def _nanoseconds(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1e9)


def bridge_options(settings: Settings, event_limit: int | None = None) -> BridgeOptions:
    """``event_limit``: the events the provider keeps per span; a window holds
    no more, or the SDK would drop the oldest of them."""
    window_events = settings.window_events
    if event_limit is not None and 0 < event_limit < window_events:
        window_events = event_limit
    everything = settings.detail == "all"
    return BridgeOptions(
        op_poll_spans=everything if settings.op_poll_spans is None else settings.op_poll_spans,
        task_poll_spans=everything,
        window_ns=int(settings.window_duration * 1e9),
        window_events=window_events,
    )


def _event_limit(provider: Any) -> int | None:
    """The SDK provider's span event limit (OTEL_SPAN_EVENT_COUNT_LIMIT,
    ``SpanLimits(max_events=...)``); None for a provider that is not the SDK's."""
    limit = getattr(getattr(provider, "_span_limits", None), "max_events", None)
    return limit if isinstance(limit, int) else None


def _application_provider() -> Any:
    """The application's global provider, if it has set one."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        return None
    return provider


def _application_meter_provider() -> Any:
    """The application's global MeterProvider, if it has set one."""
    provider = metrics.get_meter_provider()
    if type(provider).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider"):
        return None
    return provider


_session: Session | None = None
_session_lock = threading.Lock()
_atexit_registered = False


def instrument(
    tracer_provider: Any = None,
    meter_provider: Any = None,
    on_deadlock: Callable[[Deadlock], Any] | None = None,
    **options: Any,
) -> None:
    """Instrument asyncio in this process: every loop, existing and future.

    ``tracer_provider``: where spans go; by default the application's global
    SDK provider, else one configured from the environment (OTLP when an
    endpoint is set, otherwise the console view printed at exit).
    ``meter_provider``: where runtime metrics go; by default the application's
    global one, else one configured like the traces. ``on_deadlock``: called
    with each deadlock found (an ``otel_asyncres.Deadlock``), on the
    hand-off's thread. Other options: see ``otel_asyncres.config``. A second
    call is a no-op.
    """
    if sdk_disabled():  # OTEL_SDK_DISABLED=true: everything off, this included
        return
    exporting = tracer_provider is None and _application_provider() is None
    settings = load_settings(options, exporting=exporting)
    with _session_lock:
        if _session is None:
            activate(
                Session(settings, tracer_provider, meter_provider=meter_provider, on_deadlock=on_deadlock)
            )


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
