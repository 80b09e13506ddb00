"""The patched loop methods through which the task tracker sees everything.

A Python function interposed in a call shows up in the traceback of any
exception that passes through it. So hooks go where nothing is raised:

- asyncio's own loops: ``BaseEventLoop._call_soon``, which ``call_soon`` (and
  ``call_soon_threadsafe``) reach only after validating their arguments, so a
  misuse (a closed loop, a bad callback) raises with exactly the same frames;
- uvloop: its ``call_soon`` is Cython with no Python-level helper, so the hook
  is on ``call_soon`` itself (the one place where a misuse's traceback shows a
  frame of this package);
- eager task factories (3.12+), whose first step never passes ``call_soon``:
  wrapped when the loop reads its factory, never when it is set, so
  ``set_task_factory`` and ``get_task_factory`` behave exactly as before;
- ``asyncio.Task(coro, eager_start=True)`` built directly (3.12+, as aiohttp
  does), which passes neither: a task still pending after its eager first step
  is registered in ``asyncio.tasks._scheduled_tasks``, whose ``add`` the C and
  the Python Task both look up on the instance. The hook goes on that one
  WeakSet instance, after the original ``add``, and is deleted again at
  uninstall.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from asyncio import constants, format_helpers
from collections.abc import Callable
from contextvars import Context
from typing import TYPE_CHECKING, Any

from .frames import OWN_FRAME
from .loops import definitions
from .patching import Patcher
from .task_state import MUTED_CONTEXT

if TYPE_CHECKING:
    from .tasks import TaskTracker

_EAGER_FACTORY = getattr(asyncio, "eager_task_factory", None)


def install(tracker: TaskTracker, patcher: Patcher, loop_classes: list[type]) -> None:
    base = [cls for cls in loop_classes if issubclass(cls, asyncio.BaseEventLoop)]
    other = [cls for cls in loop_classes if not issubclass(cls, asyncio.BaseEventLoop)]
    for owner, original in definitions(base, "_call_soon"):
        patcher.replace(owner, "_call_soon", _hook__call_soon(tracker, original))
    for owner, original in definitions(other, "call_soon"):
        if owner is not asyncio.AbstractEventLoop:
            patcher.replace(owner, "call_soon", _hook_call_soon(tracker, original))
    registry = getattr(asyncio.tasks, "_scheduled_tasks", None)
    if _EAGER_FACTORY is not None and registry is not None:
        patcher.replace(registry, "add", _hook_register(tracker, registry.add))
    if _EAGER_FACTORY is not None:
        slot = _TaskFactorySlot(tracker)
        patcher.replace(asyncio.BaseEventLoop, "_task_factory", slot)
        patcher.replace(asyncio.BaseEventLoop, "get_task_factory", _unwrapping_get_task_factory)
        for cls, original in definitions(other, "set_task_factory"):
            if cls is not asyncio.AbstractEventLoop:
                getter = vars(cls).get("get_task_factory") or next(
                    vars(c)["get_task_factory"] for c in cls.__mro__ if "get_task_factory" in vars(c)
                )
                patcher.replace(cls, "set_task_factory", _hook_set_task_factory(slot, original))
                patcher.replace(cls, "get_task_factory", _hook_get_task_factory(getter))


def _hook__call_soon(tracker: TaskTracker, original: Callable[..., Any]) -> Callable[..., Any]:
    """A task's step is scheduled untouched, between two entries of a marker
    of the task's own (made once, reused for every step) that open and close
    the poll: the ready queue is FIFO, so the three run back to back, and no frame of
    this package is ever on the step's stack. Stack inspection, tracebacks,
    handle reprs and debug mode's reports stay exactly as they were."""
    task_step, cause_of, run_caused = tracker.task_step, tracker.cause_of, tracker.run_caused
    unrecorded = tracker.UNRECORDED_STEP

    def _call_soon(loop: Any, callback: Any, args: Any, context: Any) -> Any:
        if type(context) is Context and context.get(MUTED_CONTEXT):
            # A sampled-out program's step or callback: one lookup, no more.
            handle = original(loop, callback, args, context)
        else:
            step = task_step(loop, callback, args, context)
            if step is unrecorded:
                handle = original(loop, callback, args, context)
            elif step is not None:
                st = step[0]
                st.scheduled_args = args  # the marker is the state itself
                ready = loop._ready
                ready.append(st)
                handle = original(loop, callback, args, context)
                ready.append(st)
            else:
                cause = cause_of(callback, args)
                if cause is not None:
                    callback, args = run_caused, (cause, callback, *args)
                handle = original(loop, callback, args, context)
        if handle._source_traceback:
            _retrace(handle)
        return handle

    _call_soon.__wrapped__ = original  # type: ignore[attr-defined]
    return _call_soon


def _hook_register(tracker: TaskTracker, original: Callable[[Any], None]) -> Callable[[Any], None]:
    """``_scheduled_tasks.add``: the task is registered first, exactly as
    before; then the tracker hears of it (a task that ran its first step
    eagerly is seen here for the first time)."""
    registered = tracker.registered

    def add(task: Any) -> None:
        original(task)
        registered(task)

    return add


def _retrace(handle: Any) -> None:
    """In debug mode a handle records the (depth-limited) stack it was made
    in: record it again from the hook's caller, as if there were no hook.
    asyncio's own ``_call_soon`` frame counted in the depth, hence one less."""
    depth = constants.DEBUG_STACK_DEPTH - 1
    handle._source_traceback = format_helpers.extract_stack(sys._getframe(2 * OWN_FRAME), limit=depth)


def _hook_call_soon(tracker: TaskTracker, original: Callable[..., Any]) -> Callable[..., Any]:
    """uvloop's ``call_soon``: the same three handles."""
    task_step, cause_of, run_caused = tracker.task_step, tracker.cause_of, tracker.run_caused
    poll_begin, poll_finish = tracker.poll_begin, tracker.poll_finish
    unrecorded = tracker.UNRECORDED_STEP

    def call_soon(loop: Any, callback: Any, *args: Any, context: Any = None) -> Any:
        step = task_step(loop, callback, args, context)
        if step is unrecorded:
            handle = original(loop, callback, *args, context=context)
        elif step is not None:
            original(loop, poll_begin, *step, args, context=context)
            handle = original(loop, callback, *args, context=context)
            original(loop, poll_finish, *step, context=context)
        else:
            cause = cause_of(callback, args)
            if cause is None:
                handle = original(loop, callback, *args, context=context)
            else:
                handle = original(loop, run_caused, cause, callback, *args, context=context)
        if handle._source_traceback:  # debug mode; the attribute is read-only, its list is not
            handle._source_traceback[:] = format_helpers.extract_stack(sys._getframe(OWN_FRAME))
        return handle

    call_soon.__wrapped__ = original  # type: ignore[attr-defined]
    return call_soon


def _is_eager(factory: Any) -> bool:
    return factory is _EAGER_FACTORY or (
        getattr(factory, "__qualname__", "") == "create_eager_task_factory.<locals>.factory"
    )


class _TaskFactorySlot:
    """``BaseEventLoop._task_factory``, as a data descriptor: the loop keeps
    its factory in its instance dict as before; ``create_task`` reads an eager
    one wrapped."""

    def __init__(self, tracker: TaskTracker) -> None:
        self.tracker = tracker
        self._wrapped: weakref.WeakKeyDictionary[Any, Callable[..., Any]] = weakref.WeakKeyDictionary()
        #: asyncio's own eager factory, wrapped once: read at every create_task.
        self._eager = tracker.eager_factory(_EAGER_FACTORY) if _EAGER_FACTORY is not None else None

    def wrap(self, factory: Any) -> Any:
        if factory is _EAGER_FACTORY and self.tracker.active:
            return self._eager
        if factory is None or not _is_eager(factory) or not self.tracker.active:
            return factory
        try:
            wrapped = self._wrapped.get(factory)
            if wrapped is None:
                wrapped = self._wrapped[factory] = self.tracker.eager_factory(factory)
            return wrapped
        except TypeError:  # not weak-referenceable
            return factory

    def __get__(self, loop: Any, owner: Any = None) -> Any:
        if loop is None:
            return self
        factory = loop.__dict__.get("_task_factory")
        return factory if factory is None else self.wrap(factory)  # read at every create_task

    def __set__(self, loop: Any, factory: Any) -> None:
        loop.__dict__["_task_factory"] = factory


def _unwrapping_get_task_factory(loop: Any) -> Any:
    """Return the task factory (the one that was set, not its wrapper)."""
    return loop.__dict__.get("_task_factory")


def _hook_set_task_factory(slot: _TaskFactorySlot, original: Callable[..., Any]) -> Callable[..., Any]:
    def set_task_factory(loop: Any, factory: Any) -> None:
        original(loop, slot.wrap(factory))

    return set_task_factory


def _hook_get_task_factory(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_task_factory(loop: Any) -> Any:
        factory = original(loop)
        return getattr(factory, "__wrapped__", factory) if factory is not None else None

    return get_task_factory
