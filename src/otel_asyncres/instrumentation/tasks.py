"""Task instrumentation: spawns, polls, wakes, waker registrations and outcomes.

Everything here rests on facts verified on CPython 3.10-3.13 and uvloop
(DESIGN.md §3): the C Task (and the pure-Python one) schedules every step
through ``loop.call_soon``, looked up as an ordinary method. A step arrives as a
``TaskStepMethWrapper`` (or the bound ``Task.__step``) and a wake-up after a
future completes as the bound ``task_wakeup`` (or ``Task.__wakeup``) with the
future as argument. So one hook on ``call_soon`` sees every wake, and wrapping
the callback it schedules brackets every poll. ``create_task`` is hooked too:
it is where a task's spawn location and parent are known, and with the eager
task factory (3.12+) the first step runs inside it, never passing
``call_soon``.

The task itself is never touched: no wrapped coroutine, no subclass, no added
done-callback, so ``get_coro()``, names, reprs and callback order stay exactly
as they were. What the instrumentation knows about a task lives in a
``TaskState`` keyed by ``id(task)``, tied to the task by a weak reference that
reports a task destroyed while pending.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from time import time_ns
from types import BuiltinMethodType, CoroutineType, MethodType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace

from ..recorder import Recorder
from ..records import (
    Diagnostic,
    ErrorInfo,
    Lint,
    Location,
    Outcome,
    PollOp,
    Severity,
    StateValue,
    TaskClosed,
    TaskNamed,
    TaskPollEnded,
    TaskPollStarted,
    TaskSpawned,
    TaskWoken,
    WakeCause,
    WakerCloned,
    WakerDropped,
    next_task_id,
)
from . import hooks
from .frames import (
    await_chain,
    innermost_user_frame,
    is_runtime_callback,
    is_runtime_file,
    location_of,
    spawn_location,
)
from .patching import Patcher
from .waits import Wait

_HAS_CANCELLING = sys.version_info >= (3, 11)


def _step_wrapper_type() -> type:
    """The C Task's step callback type, found by creating one task."""

    async def noop() -> None:
        pass

    loop = asyncio.new_event_loop()
    seen: list[type] = []
    original = loop.call_soon

    def spy(callback: Any, *args: Any, context: Any = None) -> Any:
        seen.append(type(callback))
        return original(callback, *args, context=context)

    loop.call_soon = spy  # type: ignore[method-assign, assignment]
    try:
        # Named, so that asyncio's "Task-N" counter does not move.
        loop.run_until_complete(loop.create_task(noop(), name="otel-asyncres-probe"))
    finally:
        loop.close()
    return seen[0]


_STEP_TYPE = _step_wrapper_type()
_PY_TASK = getattr(asyncio.tasks, "_PyTask", None)
#: The C Task and the pure-Python one are unrelated classes.
TASK_TYPES: tuple[type, ...] = (asyncio.Task,) if _PY_TASK is None else (asyncio.Task, _PY_TASK)
_PY_STEP = getattr(_PY_TASK, "_Task__step", None)
_PY_WAKEUP = getattr(_PY_TASK, "_Task__wakeup", None)


class TaskState:
    """What the instrumentation knows about one live task.

    It also brackets the task's polls on asyncio's own loops: it stands in
    the loop's ready queue just before and just after each step, like a
    Handle (the loop reads ``_cancelled``, calls ``_run``, and names
    ``_callback`` when a callback was slow in debug mode), queued twice
    around each step, so its runs alternate, opening the poll and closing
    it. Being its own marker saves an object per live task, which the cyclic
    garbage collector would walk at every full collection."""

    __slots__ = (
        "_callback",
        "_cancelled",
        "id",
        "ref",
        "key",
        "name",
        "polled",
        "init_scheduled",
        "ran_eagerly",
        "wait",
        "pending_wait",
        "resumed",
        "cancelling",
        "name_hint",
        "outer",
        "scopes",
        "location",
        "mark_open",
        "tracker",
        "scheduled_args",
        "running",
        "muted",
        "poll_ts",
        "first_poll",
        "resumed_at",
        "parked_at",
        "lost_checked",
        "name_unsure",
        "code",
    )

    def __init__(self, task_id: int, tracker: TaskTracker | None = None) -> None:
        self.id = task_id
        #: The tracker its poll brackets report to (None: never queued).
        self.tracker = tracker
        self._cancelled = False
        self._callback = None
        self.mark_open = False
        self.ref: TaskRef | None = None
        self.key = 0
        self.name: str | None = None
        self.polled = False
        #: Set when the first step was scheduled from inside create_task.
        self.init_scheduled = False
        #: Set when the first step ran synchronously inside create_task.
        self.ran_eagerly = False
        #: The registration the task is parked on, until it is resumed.
        self.wait: Wait | None = None
        #: An op opened by an instrumented ``__await__`` in the current poll,
        #: confirmed as ``wait`` when the poll ends parked on its future.
        self.pending_wait: Wait | None = None
        #: An op resumed in the current poll that has not completed yet.
        self.resumed: Wait | None = None
        self.cancelling = 0
        #: The name an eager task finished before receiving (3.12, 3.13.0).
        self.name_hint: str | None = None
        #: While polled: the state that was current before (an eager child's
        #: first step runs inside its parent's poll).
        self.outer: TaskState | None = None
        #: Ops that are scopes the task is inside of (a timeout, a custom
        #: resource's op): each takes the waker of the wakes inside it.
        self.scopes: tuple[Wait, ...] = ()
        #: Where it was spawned (for the resource it becomes when awaited).
        self.location: Location | None = None
        #: The arguments its next step was scheduled with.
        self.scheduled_args: tuple[Any, ...] = ()
        #: The task, held from the marker before its step to the one after it
        #: (a finished task nobody holds would be freed in between).
        self.running: Any = None
        #: Not recorded (its trace is sampled out, or it was spawned while the
        #: exporter could not keep up): its steps are left untouched.
        self.muted = False
        #: When the current (or last) poll started, whether it was the first,
        #: and the ``await`` it resumed from, if known: a long poll names them.
        self.poll_ts = 0
        self.first_poll = False
        self.resumed_at: Location | None = None
        #: When it last parked; the wait last checked for a lost waker.
        self.parked_at = 0
        self.lost_checked: Wait | None = None
        #: Its first poll ran inside create_task, before some Python versions
        #: gave it its name: the name is read again at the next poll.
        self.name_unsure = False
        #: Its coroutine's code, where a long first poll started. Taken at
        #: spawn: ``get_coro()`` of an eagerly completed task crashes CPython
        #: 3.12.0 and 3.12.1 (and returns None on later 3.12s).
        self.code: Any = None

    # -- as a Handle in the loop's ready queue --------------------------------

    def cancel(self) -> None:
        self._cancelled = True

    def _run(self) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        if self.mark_open:
            self.mark_open = False
            task, self.running = self.running, None
            if task is not None:
                tracker.poll_finish(self, task)
            return
        self.mark_open = True
        task = self.ref() if self.ref is not None else None
        if task is not None:
            self.running = task
            tracker.poll_begin(self, task, self.scheduled_args)

    def __repr__(self) -> str:
        return f"<otel-asyncres poll mark of task {self.id}>"


#: The one state of every task that is not recorded because its spawner is
#: not (its trace is sampled out): nothing is kept per such task but a weak
#: reference, its steps run untouched and whatever it spawns is muted too.
MUTED = TaskState(0)
MUTED.muted = True

#: What ``task_step`` says of the step of a task that is not recorded: it is
#: scheduled untouched, and there is no cause to look for (a task's step is
#: never one of asyncio's done-callbacks). One tuple, compared by identity.
UNRECORDED_STEP: tuple[TaskState, Any] = (MUTED, None)


class TaskRef(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a task that carries its state back to the callback
    (and, for a task that shares ``MUTED``, the key it is known by)."""

    __slots__ = ("key", "state")
    state: TaskState
    key: int


class _ThreadState(threading.local):
    """Per thread (one running loop per thread): the task being polled now,
    and the task an eager task factory is spawning now."""

    current: TaskState | None = None
    spawning: TaskState | None = None
    #: While a future's done-callback runs: the task whose poll completed the
    #: future (gather, wait, TaskGroup and shield complete theirs that way).
    cause: TaskState | None = None


#: On 3.12 and 3.13.0 the loop's ``create_task`` (and, on 3.12, then
#: ``asyncio.create_task`` or ``TaskGroup.create_task``) name a task after the
#: factory returns; an eager task may be finished by then. Its name is read
#: from their ``name`` argument.
_TASK_GROUP = getattr(asyncio, "TaskGroup", None)
_NAMING_FRAMES = frozenset(
    f.__code__
    for f in (
        asyncio.tasks.create_task,
        getattr(_TASK_GROUP, "create_task", None),
        asyncio.BaseEventLoop.create_task,
    )
    if f is not None
)


#: Classifies what a task parked on: (task state, task, future, now, the op
#: resumed in this poll if any) -> a Wait, or None to let the next one decide.
Classifier = Callable[[TaskState, Any, Any, int, "Wait | None"], "Wait | None"]


def _name_being_given() -> str | None:
    """The ``name`` a create_task frame above is about to give."""
    frame = sys._getframe(2)
    found = None
    for _ in range(6):
        if frame is None:
            break
        if frame.f_code in _NAMING_FRAMES:
            name = frame.f_locals.get("name")
            if name is not None:
                found = str(name)
        frame = frame.f_back  # type: ignore[assignment]
    return found


def error_info(exc: BaseException) -> ErrorInfo:
    """An exception as a record carries it: formatted where it happened."""
    cls = type(exc)
    module = cls.__module__
    qualname = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    stack = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
    return ErrorInfo(qualname, str(exc), stack)


def _coroutine_name(coro: Any) -> str:
    name = getattr(coro, "__qualname__", None)
    return name if isinstance(name, str) else type(coro).__qualname__


#: asyncio's and uvloop's own housekeeping, spawned by the loop for itself
#: (a coroutine of asyncio that user code spawns, ``create_task(event.wait())``,
#: is the user's task).
_HOUSEKEEPING = frozenset(
    {
        "BaseEventLoop.shutdown_asyncgens",
        "BaseEventLoop.shutdown_default_executor",
        "BaseSelectorEventLoop._accept_connection2",
        "staggered_race.<locals>.run_one_coro",
        "Loop.shutdown_asyncgens",
        "Loop.shutdown_default_executor",
    }
)


def _is_internal_coroutine(coro: Any) -> bool:
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    return (
        code is not None
        and is_runtime_file(code.co_filename)
        and getattr(coro, "__qualname__", None) in _HOUSEKEEPING
    )


def _app_span_context() -> object | None:
    """The application's active span, the one read of the current context
    (most programs have no OpenTelemetry context at all: one call then)."""
    current = otel_context.get_current()
    if not current:
        return None
    ctx = otel_trace.get_current_span(current).get_span_context()
    return ctx if ctx.is_valid else None


class TaskTracker:
    """Hooks ``call_soon`` and ``create_task`` of every loop class."""

    HOOKED = ("call_soon", "create_task")
    UNRECORDED_STEP = UNRECORDED_STEP

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._emit = recorder.emit
        self._states: dict[int, TaskState] = {}
        #: Tasks muted with their spawner, by ``id()``: an entry goes when its
        #: task dies (the weak reference's callback), before the id can be reused.
        self._muted: dict[int, TaskRef] = {}
        self._tls = _ThreadState()
        self._classifiers: list[Classifier] = []
        #: Called as (state, task, when, outcome) when a task ends.
        self.close_listeners: list[Callable[[TaskState, Any, int, str], None]] = []
        #: Decides whether a new trace (a task spawned outside any task or
        #: application span) is recorded: the sampler's say, taken at spawn.
        self.sample_root: Callable[[int, str, int], bool] | None = None
        #: Records waiting for the sinks beyond which new tasks are not recorded.
        self.max_pending = 250_000
        #: Tasks not recorded because the sinks could not keep up.
        self.shed = 0
        #: A poll at least this long is a diagnostic (None: not looked for).
        self.long_poll_ns: int | None = None
        self.active = False
        #: One bound method for every task's weak reference: made per task,
        #: it would be one more object per live task for the collector.
        self._gone = self._on_task_gone

    # -- public to other instrumentation sources ---------------------------

    def current(self) -> TaskState | None:
        """The state of the task being polled on this thread, if any; a task
        that is not recorded is polled untouched, so it is found through asyncio."""
        st = self._tls.current
        if st is not None:
            return st
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return None
        return self.state_of(task) if task is not None else None

    def state_of(self, task: Any) -> TaskState | None:
        key = id(task)
        st = self._states.get(key)
        if st is not None and st.ref is not None and st.ref() is task:
            return st
        return MUTED if key in self._muted else None

    def add_classifier(self, classifier: Classifier) -> None:
        """Let a resource source recognise what a parked task waits on; the
        newest classifier is asked first."""
        self._classifiers.insert(0, classifier)

    def set_cause(self, st: TaskState | None) -> None:
        """Credit what this thread completes from now on to ``st`` (work
        running in an executor thread completes the future a task awaits)."""
        self._tls.cause = st

    def live_tasks(self) -> int:
        return len(self._states) + len(self._muted)

    def parked(self) -> list[TaskState]:
        """The recorded tasks parked now (safe from any thread: the copy is
        made in one step, under the GIL)."""
        return [st for st in list(self._states.values()) if st.wait is not None and not st.muted]

    def count_error(self, where: str, exc: BaseException) -> None:
        self._recorder.count_error(where, exc)

    # -- installation -------------------------------------------------------

    def install(self, patcher: Patcher, loop_classes: list[type]) -> None:
        hooks.install(self, patcher, loop_classes)
        self.active = True

    def uninstall(self) -> None:
        self.active = False

    def task_step(self, loop: Any, callback: Any, args: tuple[Any, ...]) -> tuple[TaskState, Any] | None:
        """When ``callback`` is a task's step or wake-up: record the schedule
        (spawn, wake) and return the task and its state, to bracket the poll."""
        kind = type(callback)
        if kind is _STEP_TYPE:
            task, wakeup = callback.__self__, False
        elif kind is BuiltinMethodType and callback.__name__ == "task_wakeup":
            task, wakeup = callback.__self__, True
        elif (
            kind is MethodType
            and _PY_TASK is not None
            and (callback.__func__ is _PY_STEP or callback.__func__ is _PY_WAKEUP)
        ):
            task, wakeup = callback.__self__, callback.__func__ is _PY_WAKEUP
        else:
            return None
        if not self.active:
            return None
        if id(task) in self._muted:  # first: most steps of a sampled-out program
            return UNRECORDED_STEP
        try:
            st = self._on_schedule(loop, task, wakeup, args)
        except Exception as exc:
            self._recorder.count_error("call_soon", exc)
            return None
        return UNRECORDED_STEP if st.muted else (st, task)

    def marker(self, st: TaskState, task: Any, args: tuple[Any, ...]) -> TaskState:
        """The marker that brackets the step being scheduled: the state itself."""
        st.scheduled_args = args
        return st

    def cause_of(self, callback: Any, args: tuple[Any, ...]) -> TaskState | None:
        """The task on whose behalf one of asyncio's own done-callbacks is being
        scheduled (gather's, wait's, TaskGroup's, shield's): when it runs,
        whatever it wakes was woken by that task. User callbacks are never
        wrapped: their reprs and tracebacks stay exactly as they were."""
        tls = self._tls
        cause = tls.current or tls.cause
        if cause is None or not args or not self.active or not is_runtime_callback(callback):
            return None
        return cause if asyncio.isfuture(args[0]) else None

    def eager_factory(self, factory: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap an eager task factory (3.12+): the task's first step runs
        inside it, never passing ``call_soon``."""
        tracker = self

        def eager_task_factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
            if not tracker.active:
                return factory(loop, coro, **kwargs)
            tls = tracker._tls
            try:
                spawner = tracker._spawner(loop)
                st = None if spawner is not None and spawner.muted else tracker._spawn_begin(coro, spawner)
            except Exception as exc:
                tracker._recorder.count_error("task factory", exc)
                return factory(loop, coro, **kwargs)
            if st is None:
                return tracker._spawn_muted(factory, loop, coro, kwargs)
            prev_spawning, prev_current = tls.spawning, tls.current
            tls.spawning = tls.current = st
            started = time_ns()
            try:
                task = factory(loop, coro, **kwargs)
            except BaseException:
                tls.spawning, tls.current = prev_spawning, prev_current
                tracker._spawn_failed(st)
                raise
            tls.spawning = prev_spawning
            try:  # still as the new task: what its first step parked on is its own
                tracker._spawn_end(st, task, started)
            except Exception as exc:
                tracker._recorder.count_error("task factory", exc)
            tls.current = prev_current
            return task

        eager_task_factory.__wrapped__ = factory  # type: ignore[attr-defined]
        return eager_task_factory

    # -- spawn ---------------------------------------------------------------

    def _spawn_begin(self, coro: Any, spawner: TaskState | None) -> TaskState:
        st = TaskState(next_task_id(), self)
        # Called by eager_task_factory: two frames of ours above _spawned.
        self._spawned(st, coro, spawner, None, 2)
        return st

    def _spawn_muted(self, factory: Callable[..., Any], loop: Any, coro: Any, kwargs: dict[str, Any]) -> Any:
        """An eager spawn by a task that is not recorded: the new task shares
        ``MUTED``, which is the current task while its first step runs inside
        the factory, so that whatever that step makes is muted too."""
        tls = self._tls
        prev_spawning, prev_current = tls.spawning, tls.current
        tls.spawning = tls.current = MUTED
        try:
            task = factory(loop, coro, **kwargs)
        finally:
            tls.spawning, tls.current = prev_spawning, prev_current
        try:  # known already if its first step scheduled it; never scheduled again if done
            if id(task) not in self._muted and asyncio.isfuture(task) and not task.done():
                self._mute(task)
        except Exception as exc:
            self._recorder.count_error("task factory", exc)
        return task

    def _spawn_failed(self, st: TaskState) -> None:
        if not st.muted:
            self._emit(TaskClosed(time_ns(), st.id, Outcome.LOST))

    def _spawn_end(self, st: TaskState, task: Any, started: int) -> None:
        if st.ref is None:
            if not asyncio.isfuture(task):
                self._spawn_failed(st)
                return
            self._bind(st, task)
        if st.init_scheduled or st.muted:
            return
        # The first step ran inside create_task (the eager task factory).
        if st.ran_eagerly or task.done() or task._fut_waiter is not None:
            self._emit(TaskPollStarted(started, st.id))
            st.poll_ts, st.first_poll, st.resumed_at = started, True, None
            self._first_poll(st, task, started)
            if task.done():
                st.name_hint = _name_being_given()
            else:
                st.name_unsure = True
            self._after_poll(st, task, time_ns())

    def _bind(self, st: TaskState, task: Any) -> None:
        ref = TaskRef(task, self._gone)
        ref.state = st
        st.ref = ref
        st.key = id(task)
        self._states[st.key] = st

    def _adopt(self, task: Any, wakeup: bool, loop: Any) -> TaskState:
        """A task first seen at a schedule: built with ``Task()`` directly (its
        first step is being scheduled), or alive before ``instrument()``."""
        parent = None if wakeup else self._spawner(loop)
        if parent is not None and parent.muted and (parent.ref is None or parent.ref() is not task):
            # A step scheduled by another task, not a wake-up: only a new
            # task's first step is (a task reschedules only itself). Sampled
            # out, that is most spawns: no need to ask the coroutine.
            return self._mute(task)
        coro = task.get_coro()
        fresh = not wakeup and _not_started(coro)
        if fresh:
            st = TaskState(next_task_id(), self)
            # Above _spawned: this, _on_schedule, task_step and the loop hook.
            self._spawned(st, coro, parent, task.get_loop(), 4)
        else:
            st = TaskState(next_task_id(), self)
            self._emit(
                TaskSpawned(
                    time_ns(),
                    st.id,
                    None,
                    _coroutine_name(coro),
                    None,
                    None,
                    adopted=True,
                    internal=_is_internal_coroutine(coro),
                )
            )
        self._bind(st, task)
        st.init_scheduled = fresh
        return st

    def _mute(self, task: Any) -> TaskState:
        ref = TaskRef(task, self._gone)
        ref.state, ref.key = MUTED, id(task)
        self._muted[ref.key] = ref
        return MUTED

    def _spawner(self, loop: Any) -> TaskState | None:
        """The task spawning now: the one being polled, or (not recorded, so
        polled untouched) asyncio's current one."""
        st = self._tls.current
        if st is None and loop is not None:
            current = asyncio.current_task(loop)
            if current is None:
                return None
            st = MUTED if id(current) in self._muted else self.state_of(current)
        return st

    def _spawned(self, st: TaskState, coro: Any, parent: TaskState | None, loop: Any, callers: int) -> None:
        """Record a spawn (made in ``loop``; None for a task factory; ``callers``:
        the frames of this package above this one), unless
        the task is not to be recorded: a child of an unrecorded task, of a
        sampled-out application span, a new trace the sampler drops, or a
        spawn while the sinks cannot keep up. An unrecorded task costs no
        frame walk and no record."""
        app = None if parent is not None else _app_span_context()
        now = time_ns()
        if parent is not None:
            st.muted = parent.muted
        elif app is not None:
            st.muted = not app.trace_flags.sampled  # type: ignore[attr-defined]
        elif self.sample_root is not None:
            st.muted = not self.sample_root(st.id, _coroutine_name(coro), now)
        if not st.muted and self._recorder.pending() > self.max_pending:
            st.muted = True
            self.shed += 1
        if st.muted:
            return
        location = st.location = spawn_location(loop, callers + 1)
        st.code = getattr(coro, "cr_code", None)
        name = _coroutine_name(coro)
        if parent is not None:
            app = _app_span_context()
        self._emit(
            TaskSpawned(
                now,
                st.id,
                parent.id if parent is not None else None,
                name,
                location,
                app,
                internal=_is_internal_coroutine(coro),
            )
        )

    # -- schedule, poll ------------------------------------------------------

    def _on_schedule(self, loop: Any, task: Any, wakeup: bool, args: tuple[Any, ...]) -> TaskState:
        tls = self._tls
        st = self._states.get(id(task))
        if st is None or st.ref is None or st.ref() is not task:  # (a muted one is known to task_step)
            spawning = tls.spawning
            if spawning is MUTED:  # being made, or made, by a muted eager spawn
                return self._mute(task)
            if spawning is not None and spawning.ref is None:
                self._bind(spawning, task)
                st = spawning
                if asyncio.current_task(loop) is not task:
                    st.init_scheduled = True  # the first step: not a wake
                    return st
                st.ran_eagerly = True
            else:
                st = self._adopt(task, wakeup, loop)
                if st.init_scheduled:
                    return st
        if st.muted:
            return st
        now = time_ns()
        waker = tls.current or tls.cause
        waker_id = waker.id if waker is not None and not waker.muted else None
        for scope in st.scopes:
            scope.waker_id = waker_id
        wait = st.wait
        if wakeup and wait is not None and args and id(args[0]) == wait.future_id:
            future = args[0]
            cause = WakeCause.FUTURE
            if future.cancelled() and self._cancel_requested(st, task):
                cause = WakeCause.CANCEL
                self._emit(WakerDropped(now, st.id, "cancelled", wait.resource_id, wait.op_id))
            self._emit(TaskWoken(now, st.id, waker_id, cause, wait.resource_id, wait.op_id))
            if wait.handler is not None:
                wait.handler.woken(wait, future, st, waker, now)
        elif wakeup:
            self._emit(TaskWoken(now, st.id, waker_id, WakeCause.FUTURE))
        else:
            cause = WakeCause.YIELD if waker is st else WakeCause.SCHEDULE
            self._emit(TaskWoken(now, st.id, waker_id, cause))
        return st

    @staticmethod
    def _cancel_requested(st: TaskState, task: Any) -> bool:
        """Whether a cancelled future woke its task because the task itself was
        cancelled (the wait abandoned), rather than the resource cancelling it.
        Python 3.10 has no ``cancelling()``: every cancelled wake counts."""
        if _HAS_CANCELLING:
            return bool(task.cancelling() > st.cancelling)
        return True

    def poll_begin(self, st: TaskState, task: Any, args: tuple[Any, ...]) -> None:
        """A task's step is about to run (its scheduled arguments: ``args``)."""
        if not self.active:
            return
        tls = self._tls
        st.outer = tls.current
        tls.current = st
        try:
            now = time_ns()
            self._emit(TaskPollStarted(now, st.id))
            st.poll_ts = now
            st.first_poll = not st.polled
            if st.first_poll:
                self._first_poll(st, task, now)
            elif st.name_unsure:
                st.name_unsure = False
                self._note_name(st, task, now)
            wait = st.wait
            st.resumed_at = wait.location if wait is not None else None
            if wait is not None:
                st.wait = None
                self._resume(st, wait, args, now)
        except Exception as exc:
            self._recorder.count_error("poll start", exc)

    def poll_finish(self, st: TaskState, task: Any) -> None:
        """A task's step has just run."""
        if self._tls.current is not st:
            return  # its start was not recorded (instrumentation just turned on or off)
        try:
            self._after_poll(st, task, time_ns())
        except Exception as exc:
            self._recorder.count_error("poll end", exc)
        self._tls.current, st.outer = st.outer, None

    def run_caused(self, cause: TaskState, callback: Any, *args: Any) -> None:
        tls = self._tls
        previous, tls.cause = tls.cause, cause
        try:
            callback(*args)
        finally:
            tls.cause = previous

    @staticmethod
    def _resume(st: TaskState, wait: Wait, args: tuple[Any, ...], now: int) -> None:
        """The task runs again after parking: inside its op, if it had one."""
        handler = wait.handler
        if handler is None:
            return
        future = args[0] if args and id(args[0]) == wait.future_id else None
        handler.resumed(wait, future, st, now)
        # Even an op that completed as the task resumed is seen again at the end
        # of this poll: asyncio removes its waiter only after the resumption.
        st.resumed = wait

    def _first_poll(self, st: TaskState, task: Any, now: int) -> None:
        st.polled = True
        self._note_name(st, task, now)

    def _note_name(self, st: TaskState, task: Any, now: int) -> None:
        name = st.name_hint or task.get_name()
        if name != st.name:
            st.name = name
            self._emit(TaskNamed(now, st.id, name))

    def _after_poll(self, st: TaskState, task: Any, now: int) -> None:
        self._emit(TaskPollEnded(now, st.id))
        if self.long_poll_ns is not None and now - st.poll_ts >= self.long_poll_ns:
            self._long_poll(st, task, now)
        pending, st.pending_wait = st.pending_wait, None
        resumed, st.resumed = st.resumed, None
        future = None if task.done() else task._fut_waiter
        wait = None
        if future is not None:
            if pending is not None and pending.future_id == id(future):
                wait, pending = pending, None
            else:
                wait = self._classify(st, task, future, now, resumed)
        if pending is not None and pending.handler is not None:
            pending.handler.abandoned(pending, st, now)
        if resumed is not None and resumed is not wait and resumed.handler is not None:
            resumed.handler.finished(resumed, st, now)
        if wait is not None:
            self._park(st, task, wait, now)
        elif task.done():
            self._close(st, task, now)

    def _park(self, st: TaskState, task: Any, wait: Wait, now: int) -> None:
        st.parked_at = now  # first: another thread may read both
        st.wait = wait
        if _HAS_CANCELLING:
            st.cancelling = task.cancelling()
        self._emit(WakerCloned(now, st.id, wait.resource_id, wait.op_id, wait.awaited_task_id))
        if wait.op_id is not None and wait.resource_id is not None:
            self._emit(PollOp(now, wait.op_id, wait.resource_id, wait.op_name, False))

    def _long_poll(self, st: TaskState, task: Any, now: int) -> None:
        """A poll that blocked the loop: where it resumed and where it gave
        the loop back (found only now: the walk is paid by long polls alone)."""
        duration = now - st.poll_ts
        started = st.resumed_at
        if st.first_poll:
            code = st.code
            if code is not None:
                name = getattr(code, "co_qualname", code.co_name)  # 3.11+
                started = Location(code.co_filename, code.co_firstlineno, name)
        attributes: dict[str, StateValue] = {
            "duration": duration / 1e9,
            "threshold": (self.long_poll_ns or 0) / 1e9,
        }
        resumed = "started" if st.first_poll else "resumed"
        if started is not None:
            attributes["started_at"] = str(started)
            resumed += f" at {started}"
        elif not st.first_poll:
            resumed += " after a yield or an unrecorded wait"
        if task.done():
            ended = "returned"
        else:
            frame = innermost_user_frame(await_chain(task.get_coro()))
            yielded = location_of(frame) if frame is not None else None
            if yielded is not None:
                attributes["yielded_at"] = str(yielded)
            ended = f"yielded at {yielded}" if yielded is not None else "yielded"
        message = f"a poll of {duration / 1e6:.1f} ms blocked the event loop: {resumed}, {ended}"
        self._emit(Diagnostic(now, Lint.LONG_POLL, st.id, Severity.WARNING, message, attributes))

    def _classify(self, st: TaskState, task: Any, future: Any, now: int, resumed: Wait | None) -> Wait:
        for classify in self._classifiers:
            wait = classify(st, task, future, now, resumed)
            if wait is not None:
                return wait
        return Wait(future)

    # -- end -----------------------------------------------------------------

    def _close(self, st: TaskState, task: Any, now: int) -> None:
        self._note_name(st, task, now)
        if task.cancelled():
            outcome, error = Outcome.CANCELLED, None
        else:
            # ``_exception`` reads the outcome without marking it retrieved, so
            # "Task exception was never retrieved" is still logged as before.
            exc = task._exception
            outcome, error = (Outcome.OK, None) if exc is None else (Outcome.ERROR, error_info(exc))
        for listener in self.close_listeners:
            listener(st, task, now, outcome)
        self._emit(TaskClosed(now, st.id, outcome, error))
        self._forget(st)

    def _forget(self, st: TaskState) -> None:
        if self._states.get(st.key) is st:
            del self._states[st.key]
        st.ref = None  # drops the weak reference: its callback will not run

    def _on_task_gone(self, ref: TaskRef) -> None:
        """A task was destroyed while pending ("Task was destroyed but it is
        pending!"): whatever it waited on can no longer wake it."""
        try:
            st = ref.state
            if st is MUTED:
                if self._muted.get(ref.key) is ref:
                    del self._muted[ref.key]
                return
            if st.ref is not ref:
                return  # closed already
            if st.muted:
                self._forget(st)
                return
            now = time_ns()
            wait = st.wait
            if wait is not None:
                self._emit(WakerDropped(now, st.id, "task destroyed", wait.resource_id, wait.op_id))
                if wait.handler is not None:
                    wait.handler.abandoned(wait, st, now)
            self._emit(TaskClosed(now, st.id, Outcome.LOST))
            self._forget(st)
        except Exception as exc:
            self._recorder.count_error("task gone", exc)


def _not_started(coro: Any) -> bool:
    """Whether the coroutine has not run yet (``inspect``'s CORO_CREATED,
    without its calls): its first step is being scheduled."""
    if type(coro) is CoroutineType:
        if coro.cr_running or coro.cr_frame is None:
            return False
        suspended = getattr(coro, "cr_suspended", None)  # 3.11+
        return not suspended if suspended is not None else coro.cr_frame.f_lasti < 0
    if inspect.isgenerator(coro):
        return inspect.getgeneratorstate(coro) == inspect.GEN_CREATED
    return False
