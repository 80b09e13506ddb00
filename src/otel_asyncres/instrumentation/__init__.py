"""Instrumentation sources: hooks into asyncio that turn what happens into records.

Each source owns one concern (tasks, future resources, ...) and installs its
hooks through one ``Patcher``, so that ``uninstall()`` restores every class
exactly as it was.
"""

from __future__ import annotations

from ..recorder import Recorder
from . import primitives, timers
from .executor import ExecutorWork
from .futures import FutureResources
from .joins import Joins
from .loops import loop_classes
from .lost_wakers import LostWakers
from .operations import OperationWaits
from .patching import Patcher
from .resources import ResourceRegistry
from .tasks import TaskTracker
from .waits import OpRecords


class Instrumentation:
    """All instrumentation sources, installed and removed together."""

    def __init__(
        self,
        recorder: Recorder,
        future_subclass: bool = False,
        long_poll_ns: int | None = None,
        lost_wakers: bool = False,
    ) -> None:
        self.recorder = recorder
        self._future_subclass = future_subclass
        self.tasks = TaskTracker(recorder)
        self.ops = OpRecords(recorder)
        self.futures = FutureResources(recorder, self.tasks, self.ops)
        self.resources = ResourceRegistry(recorder, self.tasks)
        self.operations = OperationWaits(self.resources, self.ops, self.tasks)
        self.joins = Joins(self.resources, self.ops, self.tasks)
        self.executor = ExecutorWork(self.resources, self.ops, self.tasks)
        self.tasks.long_poll_ns = long_poll_ns
        self.lost_wakers = LostWakers(self.tasks, self.resources, recorder.emit) if lost_wakers else None
        self._patcher = Patcher()

    def install(self) -> None:
        classes = loop_classes()
        self.tasks.install(self._patcher, classes)
        self.futures.install(self._patcher, classes, subclass=self._future_subclass)
        primitives.install(self.resources, self.operations, self._patcher)
        timers.install(self.resources, self.operations, self.ops, self._patcher)
        self.joins.install(self._patcher, self.operations)
        self.executor.install(self._patcher)
        self.operations.install()
        if self.lost_wakers is not None:
            self.lost_wakers.install(self._patcher)
            self.recorder.add_probe(self.lost_wakers.probe)
        self.resources.active = True

    def uninstall(self) -> None:
        self.resources.active = False
        self.futures.uninstall()
        self.tasks.uninstall()
        self._patcher.restore_all()
