"""The recorder: the one door between the event loop and everything else.

The hot path only appends records to a deque (thread-safe, no lock). A daemon
thread hands them, in order and in batches, to every attached sink; so the
OpenTelemetry SDK's cost is paid off the event loop's stack and the loop never
waits for a span to be built or exported. ``flush()`` drains synchronously, for
exit paths and tests.

Sinks are deliberately small (trio's ``Instrument`` is the model): a sink gets
batches of records, is asked to flush, and is shut down once. A sink that raises
is counted and reported, never allowed to reach the instrumented program.

Between the sources and the sinks, stages see every record first and may add
records they infer (the diagnostics: a deadlock is a conclusion drawn from
many records), in place, so that every sink sees them in order: a lint about
a task arrives before the task's end. Probes are sources that need time to
pass rather than an event (a task parked on a future nobody holds): they are
called on every tick, before the drain.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from time import time_ns
from typing import Any, Protocol

from .records import Record

logger = logging.getLogger("otel_asyncres")

#: Records handed to sinks per batch; bounds the time the drain holds its lock.
_BATCH = 4096


class Sink(Protocol):
    """Where records go. Called from one thread at a time, never from the loop's
    hot path: batches of records, a regular ``tick`` (records may not come
    for a while, time passes anyway), flushes (``final``: nothing more will
    come) and one shutdown."""

    def consume(self, records: Sequence[Record]) -> None: ...

    def tick(self, now: int) -> None: ...

    def flush(self, final: bool = False) -> None: ...

    def shutdown(self) -> None: ...


class Dispatcher:
    """A sink made of handlers by record type: each record goes to the
    handler of its type, others pass by; a handler that raises is counted in
    ``errors``, never let through. Ticks, flushes and the shutdown do nothing
    unless a subclass says otherwise."""

    def __init__(self, handlers: dict[type, Callable[[Any], None]]) -> None:
        self.handlers = handlers
        self.errors = 0

    def consume(self, records: Sequence[Record]) -> None:
        handlers = self.handlers
        for record in records:
            handler = handlers.get(type(record))
            if handler is not None:
                try:
                    handler(record)
                except Exception:
                    self.errors += 1

    def tick(self, now: int) -> None:
        pass

    def flush(self, final: bool = False) -> None:
        pass

    def shutdown(self) -> None:
        pass


class Stage(Protocol):
    """Sees the records before the sinks and hands them on, with what it
    infers from them inserted where it belongs."""

    def process(self, records: Sequence[Record]) -> Sequence[Record]: ...

    def tick(self, now: int) -> Sequence[Record]: ...

    def flush(self, final: bool = False) -> Sequence[Record]: ...


#: A source called on every tick with the time (it emits what it finds).
Probe = Callable[[int], None]


class Recorder:
    """Buffers records from any number of event loops and dispatches them."""

    def __init__(
        self, sinks: Sequence[Sink] = (), interval: float = 0.2, stages: Sequence[Stage] = ()
    ) -> None:
        self._buffer: deque[Record] = deque()
        #: The hot path's entry point: ``recorder.emit(record)``.
        self.emit = self._buffer.append
        self._sinks: list[Sink] = list(sinks)
        self._stages: list[Stage] = list(stages)
        self._probes: list[Probe] = []
        self._interval = interval
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        #: Failures of this package's own code, by where they happened.
        self.errors: dict[str, int] = {}

    def add_sink(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.remove(sink)

    def add_probe(self, probe: Probe) -> None:
        with self._lock:
            self._probes.append(probe)

    def start(self) -> None:
        """Start the dispatch thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="otel-asyncres-recorder", daemon=True)
            self._thread.start()

    def count_error(self, where: str, exc: BaseException | None = None) -> None:
        """Count one failure of our own; log the first of each kind."""
        n = self.errors.get(where, 0) + 1
        self.errors[where] = n
        if n == 1:
            logger.warning("otel-asyncres: internal error in %s: %r", where, exc)

    def pending(self) -> int:
        return len(self._buffer)

    def flush(self, final: bool = False) -> None:
        """Hand every buffered record to the sinks, then flush them."""
        with self._lock:
            self._drain()
            for stage in self._stages:
                self._deliver(self._staged(stage, "flush", final), stage)
            for sink in self._sinks:
                try:
                    sink.flush(final)
                except Exception as exc:  # a sink must never break the caller
                    self.count_error(f"{type(sink).__name__}.flush", exc)

    def close(self) -> None:
        """Flush everything, stop the thread and shut the sinks down."""
        self._stopped = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush(final=True)
        with self._lock:
            for sink in self._sinks:
                try:
                    sink.shutdown()
                except Exception as exc:
                    self.count_error(f"{type(sink).__name__}.shutdown", exc)

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                now = time_ns()
                for probe in self._probes:
                    try:
                        probe(now)
                    except Exception as exc:
                        self.count_error("probe", exc)
                self._drain()
                for stage in self._stages:
                    self._deliver(self._staged(stage, "tick", now), stage)
                for sink in self._sinks:
                    try:
                        sink.tick(now)
                    except Exception as exc:
                        self.count_error(f"{type(sink).__name__}.tick", exc)

    def _drain(self) -> None:
        popleft = self._buffer.popleft
        while self._buffer:
            n = min(len(self._buffer), _BATCH)
            batch: Sequence[Record] = [popleft() for _ in range(n)]
            for stage in self._stages:
                batch = self._staged(stage, "process", batch) or batch
            self._consume(batch)

    def _staged(self, stage: Stage, step: str, argument: Any) -> Sequence[Record]:
        """``stage.<step>(argument)``: what it hands on."""
        try:
            result: Sequence[Record] = getattr(stage, step)(argument)
            return result
        except Exception as exc:  # the records go on without what it would have added
            self.count_error(f"{type(stage).__name__}.{step}", exc)
            return ()

    def _deliver(self, records: Sequence[Record], after: Stage) -> None:
        """Records a stage produced by itself: through the stages after it,
        then to the sinks."""
        if not records:
            return
        for stage in self._stages[self._stages.index(after) + 1 :]:
            records = self._staged(stage, "process", records) or records
        self._consume(records)

    def _consume(self, batch: Sequence[Record]) -> None:
        for sink in self._sinks:
            try:
                sink.consume(batch)
            except Exception as exc:
                self.count_error(f"{type(sink).__name__}.consume", exc)
