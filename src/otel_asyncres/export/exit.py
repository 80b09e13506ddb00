"""Leaving on time: the export at exit is bounded as a whole.

The OTLP exporters retry a failed export for OTEL_EXPORTER_OTLP_TIMEOUT, and
traces and metrics each have theirs, one after the other: a collector that is
down held a 0.6 s program for 22 s. At exit the whole flush gets one time
limit; past it every exporter gives up, and what was not sent is counted as
lost and said in the summary.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import Any


class GivesUp:
    """An exporter wrapper that can stop trying. Shutting the inner exporter
    down ends a retry in progress at once (the SDK's exporters wait on an
    event that shutdown sets); what comes after fails without waiting."""

    given_up = False

    def stop_retrying(self) -> None:
        """Shut the wrapped exporter down (``given_up`` is set first, by the
        deadline, for every exporter: one's shutdown makes the others'
        retries log that they were aborted, which is no reason to keep)."""
        inner: Any = getattr(self, "inner", None)  # the wrapped exporter, of each wrapper's type
        with contextlib.suppress(Exception):
            inner.shutdown()


class ExitDeadline:
    """Gives every exporter up once the time at exit is over. Its thread is
    made when the session starts (a program's exit may run where no thread
    can be started any more: atexit, interpreter shutdown) and sleeps until
    armed; a daemon, it never holds the process itself."""

    def __init__(self, exporters: Iterable[GivesUp]) -> None:
        self._exporters = list(exporters)
        self._seconds = 0.0
        self._armed = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if self._exporters:
            self._thread = threading.Thread(target=self._watch, name="otel-asyncres-exit", daemon=True)
            self._thread.start()

    def arm(self, seconds: float) -> None:
        """Exit has begun: give up in ``seconds`` unless ``done`` comes first."""
        self._seconds = seconds
        self._armed.set()

    def done(self) -> None:
        self._done.set()
        self._armed.set()

    def _watch(self) -> None:
        self._armed.wait()
        if not self._done.wait(self._seconds):
            for exporter in self._exporters:
                exporter.given_up = True
            for exporter in self._exporters:
                exporter.stop_retrying()
