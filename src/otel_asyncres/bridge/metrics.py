"""Runtime metrics: counted on the loop, recorded on the hand-off's thread.

Where spans show single tasks and waits, metrics count every recorded one, so
a dashboard shows the event loop's health over time. The names follow
OpenTelemetry's conventions (dotted namespaces, durations in seconds, units in
braces for counts); docs/mapping.md lists them.

- ``asyncio.task.poll.duration``: how long each poll held the event loop;
- ``asyncio.task.schedule.delay``: from a task's wake (or spawn) to the poll
  it caused, the event loop's lag;
- ``asyncio.async_op.duration``: how long each async op waited, by resource
  type, op source and outcome;
- ``asyncio.task.spawned``, ``asyncio.task.finished`` (by outcome), and
  ``asyncio.diagnostics`` (by lint kind): counters;
- ``asyncio.task.active``, ``asyncio.resource.active`` (by resource type):
  up-down counters observed when the reader collects;
- ``otel_asyncres.metrics.samples_dropped``: durations counted but not
  recorded in a histogram (see below);
- ``otel_asyncres.handoff.dropped`` (by entity kind): entities worth a span
  that were folded because the hand-off to the bridge was full.

The loop only counts and appends durations to arrays of machine integers (no
object per poll); the SDK's instruments are fed on the hand-off's thread. An
SDK histogram takes one call per value, so each tick records at most
``SAMPLES_PER_TICK`` durations per histogram: beyond that, a busy program's
durations are counted as dropped samples rather than slowing it down.

Tasks whose trace is sampled out are not followed at all, so not counted;
nor are asyncio's own housekeeping tasks.
"""

from __future__ import annotations

from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ..model import Entity, Outcome
from . import semconv as sc

if TYPE_CHECKING:
    from ..instrumentation.task_state import TaskState

#: Seconds: from a fast poll (10 µs) to a wait of minutes.
DURATION_BUCKETS = (
    0.00001,
    0.00005,
    0.0001,
    0.0005,
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    60.0,
    300.0,
)

POLL_DURATION = "asyncio.task.poll.duration"
SCHEDULE_DELAY = "asyncio.task.schedule.delay"
OP_DURATION = "asyncio.async_op.duration"
TASKS_SPAWNED = "asyncio.task.spawned"
TASKS_FINISHED = "asyncio.task.finished"
TASKS_ACTIVE = "asyncio.task.active"
RESOURCES_ACTIVE = "asyncio.resource.active"
DIAGNOSTICS = "asyncio.diagnostics"
SAMPLES_DROPPED = "otel_asyncres.metrics.samples_dropped"
HANDOFF_DROPPED = "otel_asyncres.handoff.dropped"

#: Durations recorded per histogram per tick, at most.
SAMPLES_PER_TICK = 2000

#: Durations kept on the loop between two ticks, at most.
_KEPT = 65536


class RuntimeMetrics:
    """Counts on the loop (``TaskTracker.metrics``); records on the hand-off's
    thread (a consumer, as the bridge is)."""

    def __init__(
        self,
        meter: Meter,
        live_tasks: Callable[[], Iterable[TaskState]],
        live_resources: Callable[[], Iterable[Entity]],
        lint_counts: Callable[[], dict[str, int]],
        handoff_drops: Callable[[], dict[str, int]],
    ) -> None:
        def histogram(name: str, description: str) -> Any:
            return meter.create_histogram(
                name, unit="s", description=description, explicit_bucket_boundaries_advisory=DURATION_BUCKETS
            )

        self._poll = histogram(POLL_DURATION, "Time a task's poll held the event loop")
        self._delay = histogram(SCHEDULE_DELAY, "Time from a task's wake to the poll it caused")
        self._op = histogram(OP_DURATION, "Time an async op waited")
        self._spawned_counter = meter.create_counter(
            TASKS_SPAWNED, unit="{task}", description="Tasks spawned"
        )
        self._finished_counter = meter.create_counter(
            TASKS_FINISHED, unit="{task}", description="Tasks finished"
        )
        self._lints_counter = meter.create_counter(
            DIAGNOSTICS, unit="{diagnostic}", description="Lints found"
        )
        self._dropped_counter = meter.create_counter(
            SAMPLES_DROPPED, unit="{sample}", description="Durations not recorded in a histogram"
        )
        self._handoff_counter = meter.create_counter(
            HANDOFF_DROPPED, unit="{entity}", description="Entities folded because the hand-off was full"
        )
        meter.create_observable_up_down_counter(
            TASKS_ACTIVE, [self._observe_tasks], unit="{task}", description="Tasks alive"
        )
        meter.create_observable_up_down_counter(
            RESOURCES_ACTIVE, [self._observe_resources], unit="{resource}", description="Resources alive"
        )
        self._live_tasks = live_tasks
        self._live_resources = live_resources
        self._lint_counts = lint_counts
        self._handoff_drops = handoff_drops
        # -- written on the loop ---------------------------------------------------------
        self._polls = array("q")
        self._delays = array("q")
        self._ops: deque[tuple[str, str, str, int]] = deque()
        self._spawned: Counter[str] = Counter()
        self._finished: Counter[tuple[str, str]] = Counter()
        self._dropped = 0
        # -- what was recorded so far (the hand-off's thread) -----------------------------
        self._spawned_sent: Counter[str] = Counter()
        self._finished_sent: Counter[tuple[str, str]] = Counter()
        self._lints_sent: Counter[str] = Counter()
        self._handoff_sent: Counter[str] = Counter()
        self._dropped_sent = 0
        #: Kinds and types seen: their gauges report 0, not nothing.
        self._kinds_seen: set[str] = {"task"}
        self._types_seen: set[str] = set()

    # -- on the loop (TaskTracker.metrics, and op ends) ---------------------------------

    def spawned(self, st: TaskState) -> None:
        if not st.internal:
            self._spawned[st.kind] += 1

    def scheduled(self, delay: int) -> None:
        if len(self._delays) < _KEPT:
            self._delays.append(delay)
        else:
            self._dropped += 1

    def polled(self, duration: int) -> None:
        if len(self._polls) < _KEPT:
            self._polls.append(duration)
        else:
            self._dropped += 1

    def finished(self, st: TaskState) -> None:
        if not st.internal:
            self._finished[(st.kind, st.outcome or Outcome.UNFINISHED)] += 1

    def resource_created(self, concrete_type: str) -> None:
        """Its type's gauge reports it from now on (0 once they are gone)."""
        self._types_seen.add(concrete_type)

    def op_ended(self, concrete_type: str, source: str, outcome: str, duration: int) -> None:
        if len(self._ops) < _KEPT:
            self._ops.append((concrete_type, source, outcome, duration))
        else:
            self._dropped += 1

    # -- on the hand-off's thread (a consumer) ------------------------------------------

    def sync(self, entity: Entity) -> None:
        pass

    def tick(self, now: int) -> None:
        self._record_durations(self._polls, self._poll)
        self._record_durations(self._delays, self._delay)
        self._record_ops()
        self._add_deltas(self._spawned, self._spawned_sent, self._spawned_counter, self._kind_attributes)
        self._add_deltas(
            self._finished, self._finished_sent, self._finished_counter, self._outcome_attributes
        )
        self._add_deltas(
            Counter(self._lint_counts()), self._lints_sent, self._lints_counter, self._lint_attributes
        )
        self._add_deltas(
            Counter(self._handoff_drops()), self._handoff_sent, self._handoff_counter, self._kind_only
        )
        dropped = self._dropped - self._dropped_sent
        if dropped:
            self._dropped_counter.add(dropped)
            self._dropped_sent += dropped

    def flush(self, final: bool = False) -> None:
        self.tick(0)

    def shutdown(self) -> None:
        self.tick(0)

    def _record_durations(self, samples: array[int], histogram: Any) -> None:
        n = len(samples)
        if not n:
            return
        taken = samples[:n]
        del samples[:n]
        for value in taken[:SAMPLES_PER_TICK]:
            histogram.record(value / 1e9)
        self._dropped += max(n - SAMPLES_PER_TICK, 0)

    def _record_ops(self) -> None:
        ops = self._ops
        recorded = 0
        while ops:
            concrete_type, source, outcome, duration = ops.popleft()
            if recorded >= SAMPLES_PER_TICK:
                self._dropped += 1
                continue
            attributes = {
                sc.RESOURCE_CONCRETE_TYPE: concrete_type,
                sc.ASYNC_OP_SOURCE: source,
                sc.ASYNC_OP_OUTCOME: outcome,
            }
            self._op.record(duration / 1e9, attributes)
            recorded += 1

    @staticmethod
    def _add_deltas(
        current: Counter[Any], sent: Counter[Any], counter: Any, attributes: Callable[[Any], Any]
    ) -> None:
        for key, total in list(current.items()):
            delta = total - sent[key]
            if delta:
                counter.add(delta, attributes(key))
                sent[key] = total

    def _kind_attributes(self, kind: str) -> dict[str, str]:
        self._kinds_seen.add(kind)
        return {sc.TASK_KIND: kind}

    @staticmethod
    def _outcome_attributes(key: tuple[str, str]) -> dict[str, str]:
        return {sc.TASK_KIND: key[0], sc.TASK_OUTCOME: key[1]}

    @staticmethod
    def _kind_only(kind: str) -> dict[str, str]:
        return {"otel_asyncres.entity.kind": kind}

    @staticmethod
    def _lint_attributes(kind: str) -> dict[str, str]:
        return {sc.LINT_PREFIX + "kind": kind}

    # -- observations (the metric reader's thread) ----------------------------------------

    def _observe_tasks(self, options: CallbackOptions) -> Iterable[Observation]:
        live = Counter(st.kind for st in self._live_tasks() if not st.internal)
        return [Observation(live[kind], {sc.TASK_KIND: kind}) for kind in list(self._kinds_seen)]

    def _observe_resources(self, options: CallbackOptions) -> Iterable[Observation]:
        live = Counter(entity.label() for entity in self._live_resources())
        return [Observation(live[t], {sc.RESOURCE_CONCRETE_TYPE: t}) for t in sorted(self._types_seen)]
