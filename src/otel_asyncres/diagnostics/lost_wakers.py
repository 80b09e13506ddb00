"""Lost wakers: a task parked on something that nobody else can reach.

Tokio Console's "lost waker" lint is a task that waits and that nothing can
wake any more. In asyncio a task parks on a future, and what completes it is
whoever holds it: the code that will call ``set_result``, or the primitive
the future is a waiter of (a Lock's ``release``, a Queue's ``put``), through
whoever holds that primitive. If the only references to that object are the
waiting task's own (the task, its suspended coroutine chain), nobody can ever
complete the wait; only a cancellation can end it.

Reachability is decided from reference counts, without scanning the heap: the
object's count, less the references the task and its chain hold (found by
``gc.get_referents`` on those few objects), less this module's own. Whatever
is left is a reference from elsewhere, a C structure included, so the check
errs on the side of silence. A weak reference that someone else made (a
``WeakValueDictionary`` of pending requests) counts as a way to reach it.

A wait is checked once, when it has lasted ``after_ns`` (in the loop's
sweep, at most ``CHECKS_PER_SWEEP`` waits each time), and every wait still
parked when ``asyncio.run`` shuts its loop down (before the remaining tasks
are cancelled). A pending task that
the garbage collector destroys ("Task was destroyed but it is pending!") was
lost too; that one is told by its ``lost`` outcome.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import Callable
from typing import Any

from ..instrumentation.frames import chain_objects, frame_of, is_runtime_file
from ..instrumentation.patching import Patcher
from ..instrumentation.resources import ResourceRegistry
from ..instrumentation.spawns import TASK_TYPES
from ..instrumentation.task_state import TaskState
from ..instrumentation.tasks import TaskTracker
from ..instrumentation.waits import Wait
from ..model import StateValue

#: Reports a lost waker: (task, message, attributes).
Report = Callable[[TaskState, str, dict[str, StateValue], Wait], None]

#: Resource kinds whose waiters are woken by whoever holds the resource; a
#: timer or a task wakes its waiters by itself.
_HELD_KINDS = frozenset({"Sync", "Channel"})

#: Up to 3.12 a frame's ``f_locals`` is a dict cached on the frame, holding
#: references of its own; from 3.13 it is a proxy that holds none. The op
#: classifiers read asyncio's frames' locals (``self``), so those frames have
#: such a dict, counted here; user frames' locals are never read: reading
#: would snapshot them and keep the program's objects alive longer.
_LOCALS_DICT = sys.version_info < (3, 13)

#: Waits checked per sweep at most: the check runs on the loop, and a server
#: with thousands of idle connections must not stall it.
CHECKS_PER_SWEEP = 200

_PACKAGE = __name__.split(".", 1)[0]


def _references(obj: Any) -> int:
    return sys.getrefcount(obj)


def _calibrate() -> int:
    """What ``_references`` reports for an object held by one local variable
    of its caller and nothing else."""
    target = object()
    return _references(target)


_OWN_REFERENCES = _calibrate()


def _chain(task: Any) -> list[Any]:
    """The task and everything its suspended coroutine chain is made of:
    coroutines and generators, their frames (and cached locals), the
    awaitable at the bottom."""
    found: list[Any] = [task]
    own = getattr(task, "__dict__", None)  # the pure-Python Task, a subclass
    if own is not None:
        found.append(own)
    for obj in chain_objects(task.get_coro()):
        found.append(obj)
        frame = frame_of(obj)
        if frame is not None:
            found.append(frame)
            if _LOCALS_DICT and is_runtime_file(frame.f_code.co_filename):
                found.append(frame.f_locals)
    return found


def _held_from(target: Any, holders: list[Any]) -> int:
    return sum(1 for holder in holders for ref in gc.get_referents(holder) if ref is target)


def _foreign_weakrefs(target: Any) -> bool:
    """Weak references with a callback not of this package: someone keeps a
    way to the object (a plain ``weakref.ref`` cannot be told from ours)."""
    for ref in weakref.getweakrefs(target):
        callback = getattr(ref, "__callback__", None)
        func = getattr(callback, "func", callback)  # through functools.partial
        if func is not None and not str(getattr(func, "__module__", "")).startswith(_PACKAGE):
            return True
    return False


class LostWakers:
    """Finds parked tasks that nothing can wake."""

    def __init__(
        self,
        tracker: TaskTracker,
        registry: ResourceRegistry,
        report: Report,
        after_ns: int = 1_000_000_000,
    ) -> None:
        self.tracker = tracker
        self.registry = registry
        self._report = report
        self.after_ns = after_ns

    def install(self, patcher: Patcher) -> None:
        """Check every parked task when a runner shuts its loop down."""
        runners = [asyncio.runners]
        uvloop = sys.modules.get("uvloop")
        if uvloop is not None and hasattr(uvloop, "_cancel_all_tasks"):  # uvloop.run on 3.10
            runners.append(uvloop)
        for module in runners:
            patcher.replace(module, "_cancel_all_tasks", self._before_cancel_all(module._cancel_all_tasks))

    def _before_cancel_all(self, original: Callable[[Any], None]) -> Callable[[Any], None]:
        checker = self

        def _cancel_all_tasks(loop: Any) -> None:
            if checker.tracker.active:
                try:
                    checker.at_shutdown(loop)
                except Exception as exc:
                    checker.tracker.count_error("lost waker check", exc)
            original(loop)

        return _cancel_all_tasks

    def sweep(self, now: int) -> None:
        """The waits that have lasted long enough, each checked once."""
        if not self.tracker.active:
            return
        budget = CHECKS_PER_SWEEP
        for st in self.tracker.live():
            if now - st.start < self.after_ns:
                return  # oldest first: the rest are younger still
            wait = st.wait
            if wait is not None and st.lost_checked is not wait and now - st.parked_at >= self.after_ns:
                st.lost_checked = wait
                self._check(st, wait)
                budget -= 1
                if not budget:
                    return  # the rest at the next sweep

    def at_shutdown(self, loop: Any) -> None:
        for st in self.tracker.live():
            task = st.ref() if st.ref is not None else None
            wait = st.wait
            if task is None or wait is None or task.get_loop() is not loop or st.lost_checked is wait:
                continue
            st.lost_checked = wait
            self._check(st, wait)

    def _check(self, st: TaskState, wait: Wait) -> None:
        parked_at = st.parked_at
        what = self._lost(st, wait)
        if what is None or st.wait is not wait or st.parked_at != parked_at:
            return  # reachable, or the task moved on while it was looked at
        attributes: dict[str, StateValue] = {"awaits": what}
        if wait.resource is not None:
            attributes["resource_id"] = wait.resource.id
        if wait.id:
            attributes["op_id"] = wait.id
        where = ""
        if wait.location is not None:
            attributes["awaited_at"] = str(wait.location)
            where = f" at {wait.location}"
        message = (
            f"waits{where} on {what}, which nothing but the task itself references: "
            "it can never be woken, only cancelled"
        )
        self._report(st, message, attributes, wait)

    def _lost(self, st: TaskState, wait: Wait) -> str | None:
        """What the task waits on, if nothing outside it can reach it."""
        task = st.ref() if st.ref is not None else None
        if task is None or task.done() or wait.awaited is not None:
            return None
        target = self._target(task, wait)
        if target is None or _foreign_weakrefs(target):
            return None
        inside = _chain(task)
        held = sum(1 for obj in wait.held if obj is target)
        outside = _references(target) - _OWN_REFERENCES - _held_from(target, inside) - held
        if outside > 0 or task._fut_waiter is None or task._fut_waiter.done():
            return None
        family = self.registry.family_of(target)
        if family is not None:
            return family.concrete_type
        return "asyncio.Future" if isinstance(target, asyncio.Future) else type(target).__qualname__

    def _target(self, task: Any, wait: Wait) -> Any:
        """The object whose holder would wake the task: the primitive the op
        waits on, else the future itself (not a task: joins end by themselves)."""
        future = task._fut_waiter
        if future is None or id(future) != wait.future_id or future.done() or isinstance(future, TASK_TYPES):
            return None
        if not wait.objects:
            return future if wait.handler is None or wait.resource is not None else None
        obj = wait.objects[0]()
        rs = self.registry.get(obj) if obj is not None else None
        return obj if rs is not None and rs.family.kind in _HELD_KINDS else None
