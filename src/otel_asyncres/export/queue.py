"""The export queue of the providers this package builds.

A collector that is down, slow or answering errors must cost the program
nothing but counted, reported drops (DESIGN.md §5). The SDK's
BatchSpanProcessor drops the oldest span when its queue is full and logs a
warning for every one; here a full queue drops the newest span and counts it,
once, without logging. Spans are exported in batches by a thread of the
queue's own, never by whoever ends a span; ``force_flush`` and ``shutdown``
give up after their deadline and count what is left as dropped.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter


class ExportQueue(SpanProcessor):
    """Ended spans, queued (bounded) and exported in batches on a thread."""

    def __init__(
        self, exporter: SpanExporter, max_queue: int = 8192, batch: int = 512, delay: float = 1.0
    ) -> None:
        self._exporter = exporter
        self._max_queue = max_queue
        self._batch = batch
        self._delay = delay
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._stopped = False
        #: Spans dropped because the queue was full or a deadline passed.
        self.dropped = 0
        self._reported = 0
        self._thread = threading.Thread(target=self._run, name="otel-asyncres-export", daemon=True)
        self._thread.start()

    # -- SpanProcessor ----------------------------------------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopped or len(self._queue) >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append(span)
        if len(self._queue) >= self._batch:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is queued, within the deadline; the rest is dropped."""
        return self._drain(time.monotonic() + timeout_millis / 1000)

    def shutdown(self, timeout_millis: int = 10000) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=timeout_millis / 1000)
        self._drain(time.monotonic() + timeout_millis / 1000)
        self._exporter.shutdown()

    def dropped_since_last_asked(self) -> int:
        """Drops not yet reported on a span (``otel_asyncres.dropped_spans``)."""
        dropped = self.dropped
        new, self._reported = dropped - self._reported, dropped
        return new

    # -- the worker -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._drain(None)

    def _drain(self, deadline: float | None) -> bool:
        with self._export_lock:
            while self._queue:
                if deadline is not None and time.monotonic() > deadline:
                    self.dropped += len(self._queue)
                    self._queue.clear()
                    return False
                batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
                self._export(batch)
        return True

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        with contextlib.suppress(Exception):  # counted by the reporting exporter; the thread lives on
            self._exporter.export(batch)
