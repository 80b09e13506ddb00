"""Futures used as one-shot channels: the resource ``asyncio.Future``.

A future that user code creates and a task awaits is Tokio's one-shot: a sender
sets a value once, a receiver waits for it. Its state is ``value_sent``,
``value_received`` and ``cancelled``; awaiting it is the async op
``Future.__await__``.

The C ``Future`` cannot be patched, and returning anything but an
``asyncio.Future`` from ``loop.create_future()`` would change what a program
sees (``type(fut) is asyncio.Future``). So by default a future is adopted when a
task first parks on it from user code: its ``value_sent`` or ``cancelled`` is
recorded when its completion wakes the waiting task (the waker is the setter),
and ``value_received`` when that task resumes. A future set before anyone
awaited it involves no wait: it is not a resource then.

Where every path matters more than type identity, the ``futures=subclass``
option makes user code's ``loop.create_future()`` return a ``Future`` subclass
whose ``set_result``, ``set_exception``, ``cancel``, ``result`` and ``__await__``
also record. It is named ``Future`` so its repr is unchanged, ``__await__``
returns the C iterator itself so no frame of ours shows in a traceback, and in
asyncio's debug mode plain futures are kept (they record their creation stack).

Futures that asyncio makes for itself (a sleep's timer, a lock's waiter,
``shield``, ``run_in_executor``) are not resources here.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from time import time_ns
from types import MappingProxyType
from typing import Any

from ..model import Event, Outcome, StateOp, next_resource_id
from .frames import caller_is_user_code, innermost_await_frame, is_internal_file, location_of, user_location
from .loops import definitions
from .patching import Patcher
from .resources import Family, ResourceRegistry, ResourceState
from .spawns import TASK_TYPES
from .task_state import MUTED, TaskState
from .tasks import TaskTracker
from .waits import Ops, Wait, future_outcome

SOURCE = "Future.__await__"

_PLAIN_FUTURES = tuple({asyncio.Future, getattr(asyncio.futures, "_PyFuture", asyncio.Future)})

#: A one-shot's state is not in the future (nothing says it was received):
#: it is kept on the resource, as its last observed state.
FUTURE = Family(None, "asyncio.Future", "Sync", lambda fut: {})
_INITIAL = MappingProxyType({"value_sent": False, "value_received": False, "cancelled": False})


#: The live FutureResources, or None when not instrumented: futures made while
#: instrumented outlive ``uninstrument()`` and then behave as plain futures.
_active: FutureResources | None = None


class Future(asyncio.Future):  # type: ignore[type-arg]
    """An ``asyncio.Future`` that reports its one-shot state changes."""

    __slots__ = ("_asyncres",)
    _asyncres: ResourceState

    def set_result(self, result: Any, /) -> None:
        super().set_result(result)
        if _active is not None:
            _active.sent(self._asyncres)

    def set_exception(self, exception: Any, /) -> None:
        super().set_exception(exception)
        if _active is not None:
            _active.sent(self._asyncres)

    def cancel(self, msg: Any = None) -> bool:
        done = super().cancel(msg=msg)
        if done and _active is not None:
            _active.cancelled(self._asyncres)
        return done

    @property
    def result(self) -> Any:
        """Reading ``fut.result`` to call it is a receive. Handing back the C
        method, rather than calling it here, keeps this package's frame out of
        the traceback when the result is an exception."""
        if _active is not None and self.done() and not self.cancelled():
            _active.received(self._asyncres)
        return super().result

    def __await__(self) -> Any:
        if _active is not None:
            _active.awaited(self)
        return super().__await__()

    __iter__ = __await__


class FutureResources:
    """Creates, adopts and follows one-shot future resources."""

    def __init__(self, tracker: TaskTracker, registry: ResourceRegistry, ops: Ops) -> None:
        self._tracker = tracker
        self._registry = registry
        self.ops = ops
        #: Keeps the weak references (and so their end callbacks) alive.
        self._refs: dict[int, weakref.ref[Any]] = {}
        #: Adopted plain futures, by ``id()``; entries leave when the future dies.
        self._adopted: dict[int, ResourceState] = {}

    def install(self, patcher: Patcher, loop_classes: list[type], subclass: bool = False) -> None:
        """Follow futures as one-shots. By default they stay plain futures,
        adopted when a task parks on one; with ``subclass``, user code's
        ``loop.create_future()`` returns the recording subclass, which sees
        every path (a value set before anyone awaited, ``result()``), at the
        price of ``type(fut) is asyncio.Future`` no longer being true."""
        global _active
        if subclass:
            for owner, original in definitions(loop_classes, "create_future"):
                patcher.replace(owner, "create_future", self._hook_create_future(original))
        self._tracker.add_classifier(self._classify)
        _active = self

    def uninstall(self) -> None:
        global _active
        if _active is self:
            _active = None

    def _hook_create_future(self, original: Any) -> Any:
        resources = self

        def create_future(loop: Any) -> Any:
            # In debug mode a future records the stack it was made in, which
            # would show this hook: there, plain futures (adopted when awaited).
            if _active is not resources or not caller_is_user_code() or loop.get_debug():
                return original(loop)
            try:
                return resources._new_future(loop) or original(loop)
            except Exception as exc:
                resources._tracker.count_error("create_future", exc)
                return original(loop)

        create_future.__wrapped__ = original  # type: ignore[attr-defined]
        return create_future

    # -- creation, adoption, end -------------------------------------------

    def _new_future(self, loop: Any) -> Future | None:
        current = self._tracker.current()
        if current is MUTED:
            return None
        fut = Future(loop=loop)
        fut._asyncres = self._created(fut, current, user_location(), adopted=False, now=time_ns())
        return fut

    def _created(
        self, fut: Any, task: TaskState | None, location: Any, adopted: bool, now: int, key: int | None = None
    ) -> ResourceState:
        rs = ResourceState(next_resource_id(), now, FUTURE, False)
        rs.task, rs.location, rs.adopted = task, location, adopted
        rs.initial = _INITIAL
        rs.last = dict(_INITIAL)
        self._refs[rs.id] = weakref.ref(fut, functools.partial(self._gone, rs, key=key))
        self._registry.add_other(rs)
        return rs

    def _gone(self, rs: ResourceState, _ref: Any, key: int | None = None) -> None:
        """The future was collected (perhaps on another thread): its end is
        decided on the loop."""
        self._refs.pop(rs.id, None)
        if key is not None:
            self._adopted.pop(key, None)
        now = time_ns()
        self._tracker.ended_elsewhere.append(lambda: self._registry.end(rs, now))

    # -- state changes -----------------------------------------------------

    def _update(self, rs: ResourceState, attribute: str) -> None:
        if not rs.last.get(attribute):
            rs.last[attribute] = True
            event = (Event.STATE, time_ns(), attribute, True, StateOp.OVERRIDE, None)
            self._registry.policy.event(rs, event)

    def sent(self, rs: ResourceState) -> None:
        self._update(rs, "value_sent")

    def cancelled(self, rs: ResourceState) -> None:
        self._update(rs, "cancelled")

    def received(self, rs: ResourceState) -> None:
        self._update(rs, "value_received")

    def _settled(self, rs: ResourceState, fut: Any) -> None:
        """Note whatever completed ``fut`` (for adopted futures, whose setter
        we only learn about when it wakes a waiter)."""
        if fut.cancelled():
            self.cancelled(rs)
        else:
            self.sent(rs)

    # -- the async op --------------------------------------------------------

    def awaited(self, fut: Future) -> None:
        """``await fut`` from a task: a receive now, or an op that will wait."""
        try:
            rs = fut._asyncres
            if fut.done():
                if not fut.cancelled():
                    self.received(rs)
                return
            st = self._tracker.current()
            if st is not None and st is not MUTED:
                st.pending_wait = self._open_op(st, fut, rs, user_location(), time_ns())
        except Exception as exc:
            self._tracker.count_error("Future.__await__", exc)

    def _open_op(self, st: TaskState, fut: Any, rs: ResourceState, location: Any, now: int) -> Wait:
        return self.ops.open(st, fut, rs, SOURCE, location, _OneShotWaitHandler(self, rs), now)

    def _classify(self, st: TaskState, task: Any, fut: Any, now: int, resumed: Wait | None) -> Wait | None:
        """A task parked on a future: ours, or a plain one that user code made."""
        if type(fut) is Future:
            frame = innermost_await_frame(task.get_coro())
            location = location_of(frame) if frame is not None else None
            return self._open_op(st, fut, fut._asyncres, location, now)
        if type(fut) not in _PLAIN_FUTURES:
            return None
        frame = innermost_await_frame(task.get_coro())
        if frame is None or is_internal_file(frame.f_code.co_filename) or _made_by_asyncio(fut):
            return None
        rs = self._adopted.get(id(fut))
        if rs is None:
            key = id(fut)
            rs = self._adopted[key] = self._created(fut, st, location_of(frame), True, now, key)
        return self._open_op(st, fut, rs, location_of(frame), now)


class _OneShotWaitHandler:
    """A task parked in ``await fut``: woken when the future settles, done as
    soon as it runs again (the await returns at once)."""

    __slots__ = ("_resources", "_rs")

    def __init__(self, resources: FutureResources, rs: ResourceState) -> None:
        self._resources = resources
        self._rs = rs

    def woken(self, wait: Wait, future: Any, st: TaskState, waker: TaskState | None, now: int) -> None:
        self._resources._settled(self._rs, future)

    def resumed(self, wait: Wait, future: Any, st: TaskState, now: int) -> bool:
        """The await returns as soon as the task runs again: the op is over."""
        ops = self._resources.ops
        ops.poll_started(wait, st, now)
        outcome = future_outcome(future)
        if outcome in (Outcome.OK, Outcome.ERROR):
            self._resources.received(self._rs)
        ops.completed(wait, now, outcome)
        return True

    def finished(self, wait: Wait, st: TaskState, now: int) -> None:
        """Not reached: a one-shot await completes as it resumes."""

    def abandoned(self, wait: Wait, st: TaskState, now: int) -> None:
        self._resources.ops.abandoned(wait, now)


def _made_by_asyncio(fut: Any) -> bool:
    """Whether asyncio itself holds a callback on ``fut`` (``shield``,
    ``run_in_executor``/``wrap_future``, socket operations): then the future is
    asyncio's plumbing, not a one-shot the user made."""
    for callback, _ctx in fut._callbacks or ():
        if isinstance(getattr(callback, "__self__", None), TASK_TYPES):
            continue  # a waiting task's wake-up, the C or the Python one
        func = getattr(callback, "func", callback)  # functools.partial
        func = getattr(func, "__func__", func)  # bound methods
        module = getattr(func, "__module__", None) or ""
        if module.startswith("asyncio"):
            return True
    return False
