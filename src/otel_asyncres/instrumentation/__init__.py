"""Instrumentation sources: hooks into asyncio that keep, on the loop, the state
of every task, resource and async op (``model``), updated in place.

Each source owns one concern (tasks, primitives, futures, joins, timers,
executor work, streams and sockets) and installs its hooks through one ``Patcher``, so that
``uninstall()`` restores every class exactly as it was. What no consumer
needs is not hooked at all (trio's ``Instrument`` dispatch is the model):
with ``detail="tasks"`` no resource or op is followed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from time import time_ns
from typing import TYPE_CHECKING

from ..model import Entity
from ..showing import LIVE_SHOWN_AFTER_NS
from . import primitives, streams, timers
from .executor import ExecutorWork
from .futures import FutureResources
from .joins import Joins
from .loops import loop_classes
from .operations import OperationWaits
from .patching import Patcher
from .resources import ResourceRegistry, ResourceState
from .task_state import TaskState
from .tasks import TaskTracker
from .waits import Ops, Wait

if TYPE_CHECKING:
    from ..bridge.metrics import RuntimeMetrics
    from ..diagnostics.lints import LintOptions
    from ..handoff import Handoff
    from ..showing import Policy


@dataclass(frozen=True)
class Sources:
    """Which sources to install, and how ops are kept."""

    #: Follow resources and their ops (detail "resources" or "all").
    resources: bool = True
    #: ``loop.create_future()`` from user code returns a recording subclass.
    future_subclass: bool = False
    #: An op's span is a child of its resource's (op_parent=resource).
    ops_by_resource: bool = False
    #: Keep every poll of ops (and tasks) for poll spans.
    poll_log: bool = False
    #: asyncio's housekeeping tasks and primitives' own helpers are shown.
    internal: bool = False


class Instrumentation:
    """All instrumentation sources, installed and removed together."""

    def __init__(
        self,
        handoff: Handoff,
        policy: Policy,
        sources: Sources | None = None,
        lints: LintOptions | None = None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self.sources = sources = sources or Sources()
        self.policy = policy
        self.tasks = TaskTracker(policy, handoff)
        self.tasks.keep_polls = sources.poll_log
        self.tasks.show_internal = sources.internal
        self.ops = Ops(policy, sources.ops_by_resource, sources.poll_log)
        self.resources = ResourceRegistry(self.tasks, policy)
        self.futures = FutureResources(self.tasks, self.resources, self.ops)
        self.operations = OperationWaits(self.resources, self.ops, self.tasks)
        self.joins = Joins(self.resources, self.ops, self.tasks)
        self.executor = ExecutorWork(self.ops, self.tasks)
        self.tasks.metrics = self.ops.metrics = metrics
        self.lints = None
        self.lost_wakers = None
        self.tasks.sweepers += [self._show_long_lived, self.resources.compact]
        if lints is not None and lints.any():
            from ..diagnostics.lints import Lints
            from ..diagnostics.lost_wakers import LostWakers

            self.lints = Lints(lints, policy, self.tasks, handoff.call_later)
            self.tasks.lints = self.lints
            self.tasks.sweepers.append(self.lints.sweep)
            if lints.lost_wakers:
                self.lost_wakers = LostWakers(self.tasks, self.resources, self.lints.lost_waker)
                self.tasks.sweepers.append(self.lost_wakers.sweep)
        self._patcher = Patcher()

    def install(self) -> None:
        ResourceState.show_internal = self.sources.internal
        classes = loop_classes()
        self.tasks.install(self._patcher, classes)
        self.executor.install(self._patcher)
        if self.sources.resources:
            self.futures.install(self._patcher, classes, subclass=self.sources.future_subclass)
            primitives.install(self.resources, self.operations, self._patcher)
            timers.install(self.resources, self.operations, self.ops, self._patcher)
            streams.install(self.resources, self.operations, self.ops, self.tasks, self._patcher)
            self.joins.install(self._patcher, self.operations)
            self.operations.install()
        if self.lost_wakers is not None:
            self.lost_wakers.install(self._patcher)
        self.resources.active = True

    def uninstall(self) -> None:
        self.resources.active = False
        self.futures.uninstall()
        self.tasks.uninstall()
        self._patcher.restore_all()

    # -- what time tells ---------------------------------------------------------------

    def _show_long_lived(self, now: int) -> None:
        """Entities that have lived long enough are shown while they live."""
        show = self.policy.show_long_lived
        show(self.tasks.live(), now)
        show(self._old_ops(now), now)
        # Not a timer or a timeout (their op says it all), nor asyncio's own helpers.
        show((rs for rs in self.resources.live() if rs.pinnable()), now)

    def _old_ops(self, now: int) -> Iterator[Wait]:
        """The ops open for long enough to be shown while they live. Ops are
        not in order of age across tasks (the policy stops at the first young
        one), but an op is no older than its task: the tasks are walked oldest
        first, up to the first young one."""
        for st in self.tasks.live():
            if now - st.start < LIVE_SHOWN_AFTER_NS:
                return
            yield from (wait for wait in _ops_of(st) if now - wait.start >= LIVE_SHOWN_AFTER_NS)

    def _open_ops(self) -> Iterator[Wait]:
        """The ops tasks are in now, oldest task first."""
        for st in self.tasks.live():
            yield from _ops_of(st)

    def finish(self, now: int | None = None) -> None:
        """The program is over (call after ``uninstall``): what still lives
        ends here, unfinished; shown if it is worth it, as at any end."""
        end = time_ns() if now is None else now
        self.tasks.sweep(end)
        for wait in list(self._open_ops()):
            self._unfinished(wait, end)
            self.ops.abandoned(wait, end, outcome="")
        for st in reversed(list(self.tasks.live())):  # children first: they fold into their parents
            self._unfinished(st, end)
            self.tasks.forget(st)
            self.tasks.end(st, end)
        for rs in reversed(self.resources.live()):
            self._unfinished(rs, end)
            self.resources.end(rs, end)

    @staticmethod
    def _unfinished(entity: Entity, end: int) -> None:
        entity.unfinished = True


def _ops_of(st: TaskState) -> Iterator[Wait]:
    """The ops a task is in: its park, and the scopes it is inside of."""
    for wait in (st.wait, *st.scopes):
        if wait is not None and wait.id and not wait.completed:
            yield wait


__all__ = ["Instrumentation", "Sources", "TaskState"]
