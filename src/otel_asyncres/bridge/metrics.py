"""Runtime metrics: the records as OpenTelemetry instruments.

A sink beside the span bridge: where spans show single tasks and waits (and
only those worth a span), metrics count every recorded one, so a dashboard
shows the event loop's health over time. The names follow OpenTelemetry's
conventions (dotted namespaces, durations in seconds, units in braces for
counts); docs/mapping.md lists them.

- ``asyncio.task.poll.duration``: how long each poll held the event loop;
- ``asyncio.task.schedule.delay``: from a task's wake (or spawn) to the poll
  it caused, the event loop's lag;
- ``asyncio.async_op.duration``: how long each async op waited, by resource
  type, op source and outcome;
- ``asyncio.task.spawned``, ``asyncio.task.finished`` (by outcome), and
  ``asyncio.diagnostics`` (by lint kind): counters;
- ``asyncio.task.active``, ``asyncio.resource.active`` (by resource type):
  up-down counters observed when the reader collects, so they cost nothing
  per record.

Tasks whose trace is sampled out are not recorded at all, so not counted;
nor are asyncio's own housekeeping tasks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .. import records as r
from ..recorder import Dispatcher
from . import semconv as sc

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


class _Op:
    __slots__ = ("created", "source", "type")

    def __init__(self, created: int, source: str, concrete_type: str) -> None:
        self.created = created
        self.source = source
        self.type = concrete_type


class MetricsSink(Dispatcher):
    """Records every poll, wake, op and task on a meter's instruments."""

    def __init__(self, meter: Meter) -> None:
        def histogram(name: str, description: str) -> Any:
            return meter.create_histogram(
                name, unit="s", description=description, explicit_bucket_boundaries_advisory=DURATION_BUCKETS
            )

        self._poll = histogram(POLL_DURATION, "Time a task's poll held the event loop")
        self._delay = histogram(SCHEDULE_DELAY, "Time from a task's wake to the poll it caused")
        self._op = histogram(OP_DURATION, "Time an async op waited")
        self._spawned = meter.create_counter(TASKS_SPAWNED, unit="{task}", description="Tasks spawned")
        self._finished = meter.create_counter(TASKS_FINISHED, unit="{task}", description="Tasks finished")
        self._diagnostics = meter.create_counter(DIAGNOSTICS, unit="{diagnostic}", description="Lints found")
        meter.create_observable_up_down_counter(
            TASKS_ACTIVE, [self._observe_tasks], unit="{task}", description="Tasks alive"
        )
        meter.create_observable_up_down_counter(
            RESOURCES_ACTIVE, [self._observe_resources], unit="{resource}", description="Resources alive"
        )
        #: Per live task: when its current poll started, or when it was woken.
        self._polling: dict[int, int] = {}
        self._woken: dict[int, int] = {}
        self._kinds: dict[int, str] = {}
        #: Task kinds and resource types seen (a handful): their gauges report 0, not nothing.
        self._kinds_seen: set[str] = {"task"}
        self._resources: dict[int, str] = {}
        self._live_resources: Counter[str] = Counter()
        self._ops: dict[int, _Op] = {}
        handlers: dict[type, Callable[[Any], None]] = {
            r.TaskSpawned: self._task_spawned,
            r.TaskWoken: self._task_woken,
            r.TaskPollStarted: self._poll_started,
            r.TaskPollEnded: self._poll_ended,
            r.TaskClosed: self._task_closed,
            r.ResourceCreated: self._resource_created,
            r.ResourceClosed: self._resource_closed,
            r.AsyncOpCreated: self._op_created,
            r.AsyncOpClosed: self._op_closed,
            r.Diagnostic: self._diagnostic,
        }
        super().__init__(handlers)

    # -- observations ------------------------------------------------------------------

    def _observe_tasks(self, options: CallbackOptions) -> Iterable[Observation]:
        live = Counter(self._kinds.values())
        return [Observation(live[kind], {sc.TASK_KIND: kind}) for kind in list(self._kinds_seen)]

    def _observe_resources(self, options: CallbackOptions) -> Iterable[Observation]:
        live = list(self._live_resources.items())  # types seen stay, at 0: the gauge goes down to it
        return [Observation(n, {sc.RESOURCE_CONCRETE_TYPE: kind}) for kind, n in live]

    # -- records -----------------------------------------------------------------------

    def _task_spawned(self, rec: r.TaskSpawned) -> None:
        if rec.internal:  # asyncio's housekeeping (shutdown_asyncgens ...): not the program's
            return
        self._kinds[rec.task_id] = rec.kind
        self._kinds_seen.add(rec.kind)
        self._woken[rec.task_id] = rec.ts  # the spawn schedules the first poll
        self._spawned.add(1, {sc.TASK_KIND: rec.kind})

    def _task_woken(self, rec: r.TaskWoken) -> None:
        if rec.task_id in self._kinds and rec.task_id not in self._woken:
            self._woken[rec.task_id] = rec.ts

    def _poll_started(self, rec: r.TaskPollStarted) -> None:
        if rec.task_id not in self._kinds:
            return
        self._polling[rec.task_id] = rec.ts
        woken = self._woken.pop(rec.task_id, None)
        if woken is not None and woken <= rec.ts:
            self._delay.record((rec.ts - woken) / 1e9)

    def _poll_ended(self, rec: r.TaskPollEnded) -> None:
        started = self._polling.pop(rec.task_id, None)
        if started is not None:
            self._poll.record(max(rec.ts - started, 0) / 1e9)

    def _task_closed(self, rec: r.TaskClosed) -> None:
        kind = self._kinds.pop(rec.task_id, None)
        self._woken.pop(rec.task_id, None)
        self._polling.pop(rec.task_id, None)
        if kind is not None:
            self._finished.add(1, {sc.TASK_KIND: kind, sc.TASK_OUTCOME: rec.outcome})

    def _resource_created(self, rec: r.ResourceCreated) -> None:
        self._resources[rec.resource_id] = rec.concrete_type
        self._live_resources[rec.concrete_type] += 1

    def _resource_closed(self, rec: r.ResourceClosed) -> None:
        concrete_type = self._resources.pop(rec.resource_id, None)
        if concrete_type is not None:
            self._live_resources[concrete_type] -= 1

    def _op_created(self, rec: r.AsyncOpCreated) -> None:
        self._ops[rec.op_id] = _Op(rec.ts, rec.source, self._resources.get(rec.resource_id, "unknown"))

    def _op_closed(self, rec: r.AsyncOpClosed) -> None:
        op = self._ops.pop(rec.op_id, None)
        if op is not None:
            attributes = {
                sc.RESOURCE_CONCRETE_TYPE: op.type,
                sc.ASYNC_OP_SOURCE: op.source,
                sc.ASYNC_OP_OUTCOME: rec.outcome,
            }
            self._op.record(max(rec.ts - op.created, 0) / 1e9, attributes)

    def _diagnostic(self, rec: r.Diagnostic) -> None:
        self._diagnostics.add(1, {sc.LINT_PREFIX + "kind": rec.kind})
