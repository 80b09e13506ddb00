"""Executor work: ``run_in_executor`` and ``to_thread`` as tasks of kind blocking.

The function handed to an executor is a task of its own (Tokio's blocking
tasks): spawned when submitted, scheduled while it waits in the executor's
queue, polled once while it runs in the worker thread, closed with its
outcome. The task that awaits it waits in the op ``run_in_executor`` on it, and
is woken by it.

Nothing of the work's call path is wrapped: the submission is seen where
``run_in_executor`` hands the concurrent future to ``asyncio.futures.wrap_future``
(a module attribute it looks up), the start and the end in the concurrent
future's own state writes. uvloop binds ``wrap_future`` when it is imported,
so there executor work is not seen.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sys
import threading
import weakref
from time import time_ns
from types import BuiltinMethodType
from typing import Any

from ..model import Outcome, next_task_id
from .frames import await_chain, innermost_user_frame, location_of, user_location
from .patching import Patcher
from .spawns import error_info
from .task_state import MUTED, TaskState
from .tasks import TaskTracker
from .waits import Ops, Wait, future_outcome

SOURCE = "run_in_executor"
#: What the work is to the task that awaits it: a task, as any joined one.
JOINED_TYPE = "asyncio.Task"
_RUN_IN_EXECUTOR = asyncio.BaseEventLoop.run_in_executor.__code__
_RUNNING = concurrent.futures._base.RUNNING


def _work_outcome(cf: Any) -> str:
    if not cf.done():
        return "pending"
    if cf.cancelled():
        return Outcome.CANCELLED
    return Outcome.OK if cf.exception() is None else Outcome.ERROR


def _function_name(func: Any) -> str:
    """The user's function behind ``to_thread``'s ``partial(ctx.run, func)``."""
    for _ in range(8):
        if isinstance(func, functools.partial):
            inner = func.func
            is_context_run = isinstance(inner, BuiltinMethodType) and inner.__name__ == "run"
            func = func.args[0] if is_context_run and func.args else inner
        else:
            break
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return name if isinstance(name, str) else type(func).__qualname__


class _Work:
    """One piece of executor work in flight."""

    __slots__ = ("future", "started", "state")

    def __init__(self, state: TaskState, future: Any) -> None:
        self.state = state
        #: The asyncio future a task awaits (weakly: it may be dropped).
        self.future = weakref.ref(future)
        self.started = False


class ExecutorWork:
    """Blocking tasks, from submission to completion."""

    def __init__(self, ops: Ops, tracker: TaskTracker) -> None:
        self.ops = ops
        self.tracker = tracker
        self._by_concurrent: dict[int, _Work] = {}
        self._by_future: dict[int, Any] = {}  # id(asyncio future) -> concurrent future
        #: The work may start in its thread before the submission is seen.
        self._lock = threading.Lock()

    def install(self, patcher: Patcher) -> None:
        patcher.replace(asyncio.futures, "wrap_future", self._hook_wrap_future(asyncio.futures.wrap_future))
        original = concurrent.futures.Future.__setattr__
        work = self

        def __setattr__(cf: Any, name: str, value: Any) -> None:
            original(cf, name, value)
            if name == "_state" and value == _RUNNING and id(cf) in work._by_concurrent:
                work._started(cf)

        patcher.replace(concurrent.futures.Future, "__setattr__", __setattr__)
        self.tracker.add_classifier(self.classify)

    def _hook_wrap_future(self, original: Any) -> Any:
        work = self

        def wrap_future(future: Any, *, loop: Any = None) -> Any:
            wrapped = original(future, loop=loop)
            if work.tracker.active:
                caller = sys._getframe(1)
                if caller.f_code is _RUN_IN_EXECUTOR and isinstance(future, concurrent.futures.Future):
                    try:
                        work._submitted(future, wrapped, caller.f_locals.get("func"))
                    except Exception as exc:
                        work.tracker.count_error("run_in_executor", exc)
            return wrapped

        wrap_future.__wrapped__ = original  # type: ignore[attr-defined]
        return wrap_future

    # -- the blocking task's life -------------------------------------------------------

    def _submitted(self, cf: Any, wrapped: Any, func: Any) -> None:
        parent = self.tracker.current()
        if parent is MUTED:
            return
        state = TaskState(next_task_id(), time_ns(), parent)
        state.location = user_location()
        state.coroutine = _function_name(func)
        state.kind = "blocking"
        self.tracker.announce(state)
        work = _Work(state, wrapped)
        self._by_concurrent[id(cf)] = work
        self._by_future[id(wrapped)] = cf
        if cf.running():
            self._start(work)
        with cf._condition:  # first, so the credit is given before asyncio's callback wakes anyone
            if not cf.done():
                cf._done_callbacks.insert(0, self._finished)
                cf._done_callbacks.append(self._forget_cause)
                return
        self._finished(cf)

    def _started(self, cf: Any) -> None:
        """In the worker thread: the work leaves the queue and runs."""
        work = self._by_concurrent.get(id(cf))
        if work is not None:
            self._start(work)

    def _start(self, work: _Work) -> None:
        with self._lock:
            if work.started:
                return
            work.started = True
        state, now = work.state, time_ns()
        state.polls = 1
        state.poll_ts = now
        if state.woken_at is not None:
            state.scheduled = max(now - state.woken_at, 0)
            state.woken_at = None

    def _forget_cause(self, cf: Any) -> None:
        self.tracker.set_cause(None)

    def _finished(self, cf: Any) -> None:
        """The first done-callback, run where the work ended (a worker thread,
        or the loop when it was cancelled before running). What the callbacks
        after it complete (the awaited future) is credited to the work; its
        end is decided on the loop."""
        try:
            work = self._by_concurrent.pop(id(cf), None)
            if work is None:
                return
            state = work.state
            self.tracker.set_cause(state)
            wrapped = work.future()
            if wrapped is not None:
                self._by_future.pop(id(wrapped), None)
            now = time_ns()
            if work.started:
                state.busy = max(now - state.poll_ts, 0)
            state.outcome = _work_outcome(cf)
            if state.outcome == Outcome.ERROR:
                state.error = error_info(cf.exception())
            self.tracker.ended_elsewhere.append(lambda: self.tracker.end(state, now))
        except Exception as exc:
            self.tracker.count_error("executor work", exc)

    # -- the wait for it ------------------------------------------------------------------

    def classify(self, st: TaskState, task: Any, fut: Any, now: int, resumed: Wait | None) -> Wait | None:
        cf = self._by_future.get(id(fut))
        work = self._by_concurrent.get(id(cf)) if cf is not None else None
        if work is None:
            return None
        frame = innermost_user_frame(await_chain(task.get_coro()))
        where = location_of(frame) if frame is not None else None
        wait = self.ops.open(st, fut, None, SOURCE, where, _AwaitWork(self.ops), now)
        wait.concrete_type = JOINED_TYPE
        wait.awaited = work.state
        wait.joins = True
        return wait


class _AwaitWork:
    """Awaiting executor work: over as soon as the waiting task runs again."""

    __slots__ = ("ops",)

    def __init__(self, ops: Ops) -> None:
        self.ops = ops

    def woken(self, wait: Wait, future: Any, st: TaskState, waker: TaskState | None, now: int) -> None:
        pass

    def resumed(self, wait: Wait, future: Any, st: TaskState, now: int) -> bool:
        self.ops.poll_started(wait, st, now)
        self.ops.completed(wait, now, future_outcome(future))
        return True

    def finished(self, wait: Wait, st: TaskState, now: int) -> None:
        pass

    def abandoned(self, wait: Wait, st: TaskState, now: int) -> None:
        self.ops.abandoned(wait, now)
