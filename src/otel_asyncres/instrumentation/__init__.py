"""Instrumentation sources: hooks into asyncio that turn what happens into records.

Each source owns one concern (tasks, future resources, ...) and installs its
hooks through one ``Patcher``, so that ``uninstall()`` restores every class
exactly as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util

from ..recorder import Recorder
from .futures import FutureResources
from .patching import Patcher
from .tasks import TaskTracker


def loop_classes() -> list[type]:
    """Every event loop class that is loaded, uvloop's included when installed.

    Hooks go on classes, not instances, so loops created before
    ``instrument()`` are covered as well as later ones.
    """
    if importlib.util.find_spec("uvloop") is not None:
        with contextlib.suppress(ImportError):
            import uvloop  # noqa: F401  (imported so its Loop class can be hooked)
    found: list[type] = []
    pending: list[type] = [asyncio.AbstractEventLoop]
    while pending:
        cls = pending.pop()
        sub: type
        for sub in cls.__subclasses__():
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


class Instrumentation:
    """All instrumentation sources, installed and removed together."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.tasks = TaskTracker(recorder)
        self.futures = FutureResources(recorder, self.tasks)
        self._patcher = Patcher()

    def install(self) -> None:
        classes = loop_classes()
        self.tasks.install(self._patcher, classes)
        self.futures.install(self._patcher, classes)

    def uninstall(self) -> None:
        self.futures.uninstall()
        self.tasks.uninstall()
        self._patcher.restore_all()
