"""The hand-off: the one door from the event loop to the exporting side.

What crosses is only what becomes span data: a shown entity, by reference,
whenever it has something new for its span (it was shown, it has new events,
it ended). The loop queues it (a deque append) at most once until the bridge
has read it; a daemon thread wakes every ``interval`` (or early, when the queue
is half full: console-subscriber's ``flush_under_capacity``), and hands each
queued entity to the consumers on its own thread, so the OpenTelemetry SDK's
cost is never paid on the loop's stack.

The queue is bounded. When it is full, an entity about to be shown is folded
instead and counted as dropped, by kind; the count is reported while the
program runs (on the next span the bridge ends, and in the metrics), not only
at exit. An entity that is shown already is always queued: its span is open
and must end; there are no more of those than spans in flight.

A consumer that raises is counted and its first failure logged with its
traceback (trio's ``Instruments.call``); it is never let through to the
program. After ``fork()`` the child has no drain thread: one is started again
there (the SDK's ``BatchProcessor._at_fork_reinit``).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from time import time_ns
from typing import Protocol

from .model import Entity

logger = logging.getLogger("otel_asyncres")

#: Entities queued at most (each is a reference: the entities themselves
#: live on the loop whatever the queue holds).
DEFAULT_CAPACITY = 65_536

#: How often the drain thread wakes when nothing hurries it (seconds).
DEFAULT_INTERVAL = 0.2


class Consumer(Protocol):
    """What the drain thread feeds: the span bridge, the metrics."""

    def sync(self, entity: Entity) -> None:
        """Bring the entity's span up to date with the entity."""

    def tick(self, now: int) -> None:
        """Called on every wake of the drain thread: time passes."""

    def flush(self, final: bool = False) -> None:
        """Export what is pending (``final``: nothing more will come)."""

    def shutdown(self) -> None: ...


class Handoff:
    """Entities on their way from the loop to the bridge."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, interval: float = DEFAULT_INTERVAL) -> None:
        self.capacity = capacity
        self.interval = interval
        self._queue: deque[Entity] = deque()
        #: Calls to make on the drain thread, not on the loop (a user's
        #: ``on_deadlock`` callback).
        self._calls: deque[Callable[[], object]] = deque()
        self._consumers: list[Consumer] = []
        #: Called with the time on every wake of the drain thread.
        self._tickers: list[Callable[[int], None]] = []
        #: Entities folded because the queue was full, by kind; and those
        #: not yet reported on a span.
        self.dropped: dict[str, int] = {}
        self._unreported: dict[str, int] = {}
        #: Failures of this package's own code, by where they happened.
        self.errors: dict[str, int] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        _live.add(self)

    # -- the loop's side ----------------------------------------------------------------

    def has_room(self) -> bool:
        return len(self._queue) < self.capacity

    def queue(self, entity: Entity) -> None:
        """Queue a shown entity for the bridge. The bound is applied where an
        entity is about to be shown (``has_room``): one shown already always
        gets through, its span is open."""
        queue = self._queue
        queue.append(entity)
        if len(queue) * 2 >= self.capacity:
            self._wake.set()

    def hurry(self) -> None:
        """Wake the drain thread now (an entity has a window's worth of events)."""
        self._wake.set()

    def call_later(self, call: Callable[[], object]) -> None:
        """Run ``call`` on the drain thread, soon."""
        self._calls.append(call)
        self._wake.set()

    def count_drop(self, kind: str) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + 1
        self._unreported[kind] = self._unreported.get(kind, 0) + 1

    def take_unreported_drops(self) -> dict[str, int]:
        """Drops not yet said on a span (read by the bridge's thread)."""
        if not self._unreported:
            return {}
        taken, self._unreported = self._unreported, {}
        return taken

    def count_error(self, where: str, exc: BaseException | None = None) -> None:
        """Count one failure of our own; log the first of each kind, with its
        traceback, so that it can be fixed."""
        n = self.errors.get(where, 0) + 1
        self.errors[where] = n
        if n == 1:
            logger.warning("otel-asyncres: internal error in %s", where, exc_info=exc)

    def pending(self) -> int:
        return len(self._queue)

    # -- consumers and the drain thread -------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        with self._lock:
            self._consumers.append(consumer)

    def add_ticker(self, ticker: Callable[[int], None]) -> None:
        with self._lock:
            self._tickers.append(ticker)

    def start(self) -> None:
        """Start the drain thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="otel-asyncres-handoff", daemon=True)
            self._thread.start()

    def flush(self, final: bool = False) -> None:
        """Hand every queued entity to the consumers, then flush them."""
        with self._lock:
            self._drain()
            for consumer in self._consumers:
                self._call(consumer, "flush", final)

    def close(self) -> None:
        """Flush everything, stop the thread and shut the consumers down."""
        self._stopped = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush(final=True)
        with self._lock:
            for consumer in self._consumers:
                self._call(consumer, "shutdown")

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                self._drain()
                now = time_ns()
                for consumer in self._consumers:
                    self._call(consumer, "tick", now)
                for ticker in self._tickers:
                    try:
                        ticker(now)
                    except Exception as exc:
                        self.count_error("tick", exc)

    def _drain(self) -> None:
        calls = self._calls
        while calls:
            call = calls.popleft()
            try:
                call()
            except Exception as exc:
                self.count_error("callback", exc)
        queue = self._queue
        consumers = self._consumers
        while queue:
            entity = queue.popleft()
            entity.queued = False  # first: a change from now on queues it again
            for consumer in consumers:
                try:
                    consumer.sync(entity)
                except Exception as exc:
                    self.count_error(f"{type(consumer).__name__}.sync({entity.KIND})", exc)

    def _call(self, consumer: Consumer, method: str, *args: object) -> None:
        try:
            getattr(consumer, method)(*args)
        except Exception as exc:  # a consumer must never break the caller
            self.count_error(f"{type(consumer).__name__}.{method}", exc)

    def _after_fork(self) -> None:
        """In a forked child: the drain thread did not survive the fork, its
        lock may be held by a thread that is gone. Start afresh."""
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._pid = os.getpid()
        if self._thread is not None and not self._stopped:
            self._thread = None
            self.start()


#: Every hand-off alive, to restart after a fork.
_live: weakref.WeakSet[Handoff] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for handoff in list(_live):
        handoff._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
