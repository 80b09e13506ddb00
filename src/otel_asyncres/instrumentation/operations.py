"""Async operations on resources, recognised from where a task is parked.

When a poll ends with the task parked, the coroutine chain it is suspended in
says what it is doing: the outermost frame whose code is a known operation
(``Lock.acquire``, ``Queue.get``, ``Barrier.wait``, ``asyncio.sleep`` ...) is the
op, the object it runs on (``self`` in that frame) is the resource, and the
frame that called it is the ``await`` in user code. Nothing is wrapped: the
chain is read only when a task parks, which is when an op begins or goes on
waiting, never on the fast paths that do not wait.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from ..model import Outcome
from .frames import is_internal_file, location_of
from .resources import Family, ResourceRegistry, ResourceState, owns
from .task_state import TaskState
from .tasks import TaskTracker
from .waits import Ops, Wait, future_outcome

#: Ready on resume: the op completes as soon as its task runs again.
ALWAYS = None


class OpSpec:
    """What a code object does, as an async op."""

    __slots__ = (
        "closes_resource",
        "family",
        "goes_on_when_cancelled",
        "on_open",
        "on_resume",
        "outcome",
        "ready",
        "resource",
        "source",
    )

    def __init__(
        self,
        source: str,
        family: Family,
        ready: Callable[[Any, Any], bool] | None = ALWAYS,
        resource: Callable[[FrameType, Any], Any] | None = None,
        outcome: Callable[[Any], str | None] | None = None,
        closes_resource: bool = False,
        goes_on_when_cancelled: bool = False,
        on_open: Callable[[Wait, FrameType, Any], None] | None = None,
        on_resume: Callable[[Wait, Any], None] | None = None,
    ) -> None:
        self.source = source
        self.family = family
        #: (resource object, the future it resumed on) -> completes now; None: always.
        self.ready = ready
        #: (op frame, op coroutine) -> the resource object; default: ``self``.
        self.resource = resource or _self_of
        #: resource object -> an outcome other than ok (a broken barrier's
        #: error), judged when the task resumes in the op.
        self.outcome = outcome
        #: The resource is made for the op and ends with it (a sleep's timer).
        self.closes_resource = closes_resource
        #: A cancelled op may wait again before it raises (``Condition.wait``
        #: re-acquires its lock): it ends when it stops, not when cancelled.
        self.goes_on_when_cancelled = goes_on_when_cancelled
        #: (new op, op frame, op coroutine): the op's own state from the call's
        #: arguments (the bytes a ``sock_sendall`` sends), read while it is alive.
        self.on_open = on_open
        #: (op, the completed future it resumed on): what the wait returned
        #: (the bytes a ``sock_recv`` received); only when it went well.
        self.on_resume = on_resume


def _self_of(frame: FrameType, coro: Any) -> Any:
    return frame.f_locals.get("self")


class OperationWaits:
    """The classifier and handler of waits inside known async operations."""

    def __init__(self, registry: ResourceRegistry, ops: Ops, tracker: TaskTracker) -> None:
        self.registry = registry
        self.ops = ops
        self.tracker = tracker
        self._specs: dict[CodeType, OpSpec] = {}
        self._handlers: dict[int, _OpHandler] = {}
        self._late: dict[str, Callable[[Any, OperationWaits], None]] = {}

    def add(self, function: Any, spec: OpSpec) -> None:
        code = getattr(function, "__code__", None)
        if code is not None:
            self._specs[code] = spec

    def add_when_imported(self, module: str, install: Callable[[Any, OperationWaits], None]) -> None:
        """Ops of a library that may be imported later (aiohttp): added at
        the first park no op explains once ``module`` is in ``sys.modules``,
        never by importing it (a program that does not use it pays nothing)."""
        self._late[module] = install

    def _install_late(self) -> bool:
        found = [name for name in self._late if name in sys.modules]
        for name in found:
            self._late.pop(name)(sys.modules[name], self)
        return bool(found)

    def install(self) -> None:
        self.tracker.add_classifier(self.classify)

    def classify(self, st: TaskState, task: Any, future: Any, now: int, resumed: Wait | None) -> Wait | None:
        found = self._find(task.get_coro())
        if found is None and self._late and self._install_late():
            found = self._find(task.get_coro())
        if found is None:
            return None
        spec, op_frame, op_coro, caller, involved = found
        obj = spec.resource(op_frame, op_coro)
        if obj is None:
            return None
        location = location_of(caller) if caller is not None else None
        if spec.closes_resource:  # made for this op: created where it is awaited
            rs = self.registry.ensure(obj, spec.family, location, adopted=False)
        else:  # adopted here if it predates instrumentation: where it is first used
            rs = self.registry.ensure(obj, self.registry.family_of(obj) or spec.family, location)
        if rs is None:
            return None
        if resumed is not None and not resumed.completed and _same(resumed.key, op_coro):
            wait = self.ops.continued(resumed, future)
        else:
            handler = self._handler(spec)
            wait = self.ops.open(st, future, rs, spec.source, location, handler, now, _weak(op_coro))
            if spec.on_open is not None:
                spec.on_open(wait, op_frame, op_coro)
        refs = [_weak(obj)]
        for inner in involved:
            if inner is obj:
                continue
            # A primitive the op's object owns (a Condition's Lock) is its internal child.
            parent = rs if owns(obj, inner) else None
            if self.registry.ensure(inner, parent=parent, location=None if parent else location) is not None:
                refs.append(_weak(inner))
        wait.objects = tuple(r for r in refs if r is not None)
        self.observe(wait)
        return wait

    def observe(self, wait: Wait) -> None:
        """Record the state of every resource the op involves."""
        for ref in wait.objects:
            obj = ref()
            if obj is not None:
                self.registry.observe(obj)

    def _handler(self, spec: OpSpec) -> _OpHandler:
        handler = self._handlers.get(id(spec))
        if handler is None:
            handler = self._handlers[id(spec)] = _OpHandler(self, spec)
        return handler

    def _find(self, coro: Any) -> tuple[OpSpec, FrameType, Any, FrameType | None, list[Any]] | None:
        """Walk the suspended chain: the outermost known op, the user frame
        that awaited it, and every resource object the chain passes through."""
        specs = self._specs
        found = None
        caller: FrameType | None = None
        last_user: FrameType | None = None
        involved: list[Any] = []
        obj = coro
        for _ in range(256):
            frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
            if frame is None:
                break
            spec = specs.get(frame.f_code)
            if spec is not None:
                if found is None:
                    found, caller = (spec, frame, obj), last_user
                if spec.resource is _self_of:
                    involved.append(frame.f_locals.get("self"))
            elif not is_internal_file(frame.f_code.co_filename):
                last_user = frame
            obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
        if found is None:
            return None
        spec, frame, op_coro = found
        return spec, frame, op_coro, caller, involved


class _OpHandler:
    """The wait handler of one kind of op."""

    __slots__ = ("spec", "waits")

    def __init__(self, waits: OperationWaits, spec: OpSpec) -> None:
        self.waits = waits
        self.spec = spec

    def woken(self, wait: Wait, future: Any, st: TaskState, waker: TaskState | None, now: int) -> None:
        family = self.spec.family
        if family.on_wake is not None and wait.objects:
            rs = self._resource(wait)
            if rs is not None:
                family.on_wake(self.waits.registry, rs, st)

    def resumed(self, wait: Wait, future: Any, st: TaskState, now: int) -> bool:
        self.waits.ops.poll_started(wait, st, now)
        wait.outcome = self._outcome(wait, future, st)
        cancelled = wait.outcome == Outcome.CANCELLED
        if self.spec.on_resume is not None and future is not None and wait.outcome == Outcome.OK:
            self.spec.on_resume(wait, future)
        ready = self.spec.ready
        if (
            (cancelled and not self.spec.goes_on_when_cancelled)
            or ready is ALWAYS
            or self._ready(wait, future)
        ):
            self._complete(wait, now)
            return True
        return False

    def _outcome(self, wait: Wait, future: Any, st: TaskState) -> str:
        """How the op is ending, as its task resumes in it: cancelled if the
        future was cancelled or the task has a cancellation coming (thrown into
        it on this very resumption, even if the wait itself was granted), and
        once cancelled, cancelled to the end."""
        task = st.ref() if st.ref is not None else None
        if wait.outcome == Outcome.CANCELLED or (task is not None and task._must_cancel):
            return Outcome.CANCELLED
        outcome = future_outcome(future) if future is not None else Outcome.OK
        if outcome == Outcome.OK and self.spec.outcome is not None and wait.objects:
            obj = wait.objects[0]()
            if obj is not None:
                outcome = self.spec.outcome(obj) or outcome
        return outcome

    def finished(self, wait: Wait, st: TaskState, now: int) -> None:
        if not wait.completed:
            self._complete(wait, self.waits.ops.finish_time(wait, now))
        self.waits.observe(wait)
        wait.held = ()

    def abandoned(self, wait: Wait, st: TaskState, now: int) -> None:
        if not wait.completed:
            wait.completed = True
            self.waits.ops.abandoned(wait, now)
            self._end_resource(wait)
        self.waits.observe(wait)

    def _complete(self, wait: Wait, ts: int) -> None:
        if self.spec.closes_resource:  # its last state, before it ends with the op
            self.waits.observe(wait)
        self.waits.ops.completed(wait, ts, wait.outcome or Outcome.OK)
        self._end_resource(wait)

    def _ready(self, wait: Wait, future: Any) -> bool:
        obj = wait.objects[0]() if wait.objects else None
        return obj is None or bool(self.spec.ready(obj, future))  # type: ignore[misc]

    def _resource(self, wait: Wait) -> ResourceState | None:
        obj = wait.objects[0]() if wait.objects else None
        return self.waits.registry.get(obj) if obj is not None else None

    def _end_resource(self, wait: Wait) -> None:
        if self.spec.closes_resource and wait.objects:
            obj = wait.objects[0]()
            if obj is not None:
                self.waits.registry.close(obj)


def _same(ref: weakref.ref[Any] | None, obj: Any) -> bool:
    return ref is not None and ref() is obj


def _weak(obj: Any) -> weakref.ref[Any] | None:
    try:
        return weakref.ref(obj)
    except TypeError:
        return None
