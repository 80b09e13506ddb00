"""Task instrumentation: spawns, polls, wakes, waker registrations and outcomes.

Everything here rests on facts verified on CPython 3.10-3.13 and uvloop
(DESIGN.md §3): the C Task (and the pure-Python one) schedules every step
through ``loop.call_soon``, looked up as an ordinary method, so one hook on
``call_soon`` sees every spawn, wake and step (``hooks``); with the eager task
factory (3.12+) the first step runs inside ``create_task``, so the factory is
wrapped too.

Each hook updates the task's ``TaskState`` in place: Tokio Console's
statistics are plain numbers on it, and nothing is made per poll or per wake
but the events that a shown span keeps (``showing.Policy.event``). When a task
ends, the policy decides whether it becomes a span or is folded into its
parent.

The task itself is never touched: no wrapped coroutine, no subclass, no added
done-callback, so ``get_coro()``, names, reprs and callback order stay exactly
as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from time import time_ns
from types import BuiltinMethodType, MethodType
from typing import TYPE_CHECKING, Any, Protocol

from ..model import Entity, Event, Fate, Outcome, WakeCause, compacted, next_task_id
from . import hooks
from .frames import is_runtime_callback, spawn_location
from .patching import Patcher
from .spawns import (
    HAS_CANCELLING,
    PY_STEP,
    PY_TASK,
    PY_WAKEUP,
    STEP_TYPE,
    app_span_context,
    cancel_requested,
    coroutine_name,
    error_info,
    is_internal_coroutine,
    name_being_given,
    not_started,
)
from .task_state import MUTED, MUTED_CONTEXT, TaskRef, TaskState
from .waits import Wait

if TYPE_CHECKING:
    from ..handoff import Handoff
    from ..showing import Policy

#: How often the loop looks at what lives long (long-lived entities to show,
#: long waits, lost wakers), checked at the end of a poll.
SWEEP_EVERY_NS = 250_000_000

#: What ``task_step`` says of the step of a task that is not recorded: it is
#: scheduled untouched. One tuple, compared by identity.
UNRECORDED_STEP: tuple[TaskState, Any] = (MUTED, None)

#: Classifies what a task parked on: (task state, task, future, now, the op
#: resumed in this poll if any) -> a Wait, or None to let the next one decide.
Classifier = Callable[[TaskState, Any, Any, int, "Wait | None"], "Wait | None"]


class TaskLints(Protocol):
    """The diagnostics the tracker calls on the loop (``diagnostics.lints``)."""

    def poll_ended(self, st: TaskState, task: Any, now: int) -> None: ...

    def woken(self, st: TaskState, now: int) -> None: ...

    def parked(self, st: TaskState, wait: Wait, now: int) -> None: ...

    def closed(self, st: TaskState, now: int) -> None: ...


class LoopMetrics(Protocol):
    """Runtime metrics aggregated on the loop (``bridge.metrics``)."""

    def spawned(self, st: TaskState) -> None: ...

    def scheduled(self, delay: int) -> None: ...

    def polled(self, duration: int) -> None: ...

    def finished(self, st: TaskState) -> None: ...


class _ThreadState(threading.local):
    """Per thread (one running loop per thread): the task being polled now,
    and the task an eager task factory is spawning now."""

    current: TaskState | None = None
    spawning: TaskState | None = None
    #: While a future's done-callback runs: the task whose poll completed the
    #: future (gather, wait, TaskGroup and shield complete theirs that way).
    cause: TaskState | None = None


class TaskTracker:
    """Hooks ``call_soon`` and the task factory of every loop class."""

    UNRECORDED_STEP = UNRECORDED_STEP

    def __init__(self, policy: Policy, handoff: Handoff) -> None:
        self.policy = policy
        self._handoff = handoff
        self._states: dict[int, TaskState] = {}
        #: Sampled-out root tasks whose context could not be marked (it was
        #: entered at the time): by ``id()``, gone with their task.
        self._muted: dict[int, TaskRef] = {}
        self._tls = _ThreadState()
        self._classifiers: list[Classifier] = []
        #: Called as (state, task, when) when a task ends (its outcome set).
        self.close_listeners: list[Callable[[TaskState, Any, int], None]] = []
        #: Called on the loop every SWEEP_EVERY_NS, with the time.
        self.sweepers: list[Callable[[int], None]] = []
        self._next_sweep = 0
        self._last_sweep = 0
        #: Loops that ran a sweep (to be poked when idle), and whether a poke
        #: is on its way.
        self._loops: weakref.WeakSet[Any] = weakref.WeakSet()
        self._poke_pending = False
        #: Entities that ended on another thread (a garbage collection ran
        #: there): decided on the loop, at the end of its next poll.
        self.ended_elsewhere: deque[Callable[[], None]] = deque()
        #: Decides whether a new trace (a task spawned outside any task or
        #: application span) is recorded: the sampler's say, taken at spawn.
        self.sample_root: Callable[[int, str, int], bool] | None = None
        #: Root tasks whose span was started at spawn to ask the sampler
        #: (see ``sampling``): always shown, their span is open already.
        self.prestarted: dict[int, Any] = {}
        self.lints: TaskLints | None = None
        self.metrics: LoopMetrics | None = None
        #: Keep each poll's start and end, for poll spans (detail=all).
        self.keep_polls = False
        #: asyncio's housekeeping tasks are tasks like any other (``internal``).
        self.show_internal = False
        self.active = False
        #: One bound method for every task's weak reference: made per task,
        #: it would be one more object per live task for the collector.
        self._gone = self._on_task_gone

    # -- public to other instrumentation sources ---------------------------

    def current(self) -> TaskState | None:
        """The state of the task being polled on this thread, if any (MUTED
        for a task that is not recorded: it is polled untouched)."""
        st = self._tls.current
        if st is not None:
            return st
        if MUTED_CONTEXT.get():
            return MUTED
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

    def live(self) -> Iterator[TaskState]:
        """The recorded tasks alive, oldest first (a copy: safe to walk
        while tasks come and go)."""
        return iter(list(self._states.values()))

    def count_error(self, where: str, exc: BaseException) -> None:
        self._handoff.count_error(where, exc)

    def event(self, entity: Entity, event: tuple[Any, ...]) -> None:
        self.policy.event(entity, event)

    # -- installation -------------------------------------------------------

    def install(self, patcher: Patcher, loop_classes: list[type]) -> None:
        hooks.install(self, patcher, loop_classes)
        self.active = True

    def uninstall(self) -> None:
        self.active = False

    # -- the hooks -------------------------------------------------------------

    def task_step(
        self, loop: Any, callback: Any, args: tuple[Any, ...], context: Any
    ) -> tuple[TaskState, Any] | None:
        """When ``callback`` is a task's step or wake-up: note the schedule
        (spawn, wake) and return the task and its state, to bracket the
        poll; UNRECORDED_STEP for a task that is not recorded."""
        kind = type(callback)
        if kind is STEP_TYPE:
            task, wakeup = callback.__self__, False
        elif kind is BuiltinMethodType and callback.__name__ == "task_wakeup":
            task, wakeup = callback.__self__, True
        elif (
            kind is MethodType
            and PY_TASK is not None
            and (callback.__func__ is PY_STEP or callback.__func__ is PY_WAKEUP)
        ):
            task, wakeup = callback.__self__, callback.__func__ is PY_WAKEUP
        else:
            return None
        if not self.active:
            return None
        st = self._states.get(id(task))
        if st is None or st.ref is None or st.ref() is not task:
            if context is not None and context.get(MUTED_CONTEXT):
                return UNRECORDED_STEP  # most steps of a sampled-out program: one lookup
            if id(task) in self._muted:
                return UNRECORDED_STEP
            st = None
        try:
            st = self._on_schedule(loop, task, wakeup, args, st, context)
        except Exception as exc:
            self.count_error("call_soon", exc)
            return None
        if st is MUTED:
            return UNRECORDED_STEP
        st.context = context
        return st, task

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

    def run_caused(self, cause: TaskState, callback: Any, *args: Any) -> None:
        tls = self._tls
        previous, tls.cause = tls.cause, cause
        try:
            callback(*args)
        finally:
            tls.cause = previous

    def eager_factory(self, factory: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap an eager task factory (3.12+): the task's first step runs
        inside it, never passing ``call_soon``."""
        tracker = self

        def eager_task_factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
            if not tracker.active or MUTED_CONTEXT.get():
                return factory(loop, coro, **kwargs)
            return tracker._eager_spawn(factory, loop, coro, kwargs)

        eager_task_factory.__wrapped__ = factory  # type: ignore[attr-defined]
        return eager_task_factory

    def registered(self, task: Any) -> None:
        """A task was registered with asyncio (every task, 3.12+). One built
        with ``eager_start=True`` outside a task factory is registered after
        its eager first step, still inside its spawner's poll: it is followed
        from here, as the eager factory's tasks are (``_spawn_end``). Any
        other task is left to ``call_soon``, which sees its first step."""
        if not self.active or self._tls.spawning is not None or MUTED_CONTEXT.get():
            return
        try:
            if id(task) in self._states or id(task) in self._muted:
                return
            coro = task.get_coro()
            if task.done() or not_started(coro):
                return
            self._eager_started(task, coro)
        except Exception as exc:
            self.count_error("task registration", exc)

    def _eager_started(self, task: Any, coro: Any) -> None:
        loop = task.get_loop()
        now = time_ns()
        st = TaskState(next_task_id(), now, None, self)
        # Above _spawned: this, registered and the registry hook.
        if not self._spawned(st, coro, self._spawner(loop), loop, 3):
            self._mute(task, None)
            return
        self._bind(st, task)
        st.context = task.get_context()  # 3.12+, as eager_start
        tls = self._tls
        current = tls.current
        # Its first poll is over: seen as one, of unknown length, ending now.
        self._open_poll(st, task, now, ())
        st.name_unsure = True
        self._after_poll(st, task, time_ns())
        tls.current, st.outer = current, None

    # -- spawn -------------------------------------------------------------------

    def _bind(self, st: TaskState, task: Any) -> None:
        ref = TaskRef(task, self._gone)
        ref.state = st
        st.ref = ref
        st.key = id(task)
        self._states[st.key] = st

    def _spawner(self, loop: Any) -> TaskState | None:
        """The task spawning now: the one being polled, or (not recorded, so
        polled untouched) asyncio's current one."""
        st = self._tls.current
        if st is None and loop is not None:
            current = asyncio.current_task(loop)
            if current is None:
                return None
            st = self.state_of(current)
        return st

    def _adopt(self, task: Any, wakeup: bool, loop: Any, context: Any) -> TaskState:
        """A task first seen at a schedule: built with ``Task()`` directly (its
        first step is being scheduled), or alive before ``instrument()``."""
        parent = None if wakeup else self._spawner(loop)
        coro = task.get_coro()
        fresh = not wakeup and not_started(coro)
        now = time_ns()
        if fresh:
            st = TaskState(next_task_id(), now, None, self)
            # Above _spawned: this, _on_schedule, task_step and the loop hook.
            if not self._spawned(st, coro, parent, task.get_loop(), 4):
                return self._mute(task, context)
            st.init_scheduled = True
        else:
            st = TaskState(next_task_id(), now, None, self)
            st.coroutine = coroutine_name(coro)
            st.adopted = True
            st.internal = not self.show_internal and is_internal_coroutine(coro)
            self.announce(st)
        self._bind(st, task)
        return st

    def _mute(self, task: Any, context: Any) -> TaskState:
        """A sampled-out root: mark its context, which whatever it spawns
        copies; if the context is in use (entered), keep its id instead."""
        if context is not None:
            try:
                context.run(MUTED_CONTEXT.set, True)
                return MUTED
            except RuntimeError:
                pass
        ref = TaskRef(task, self._gone)
        ref.state, ref.key = MUTED, id(task)
        self._muted[ref.key] = ref
        return MUTED

    def _spawned(self, st: TaskState, coro: Any, parent: TaskState | None, loop: Any, callers: int) -> bool:
        """Fill in a spawn (made in ``loop``; None for a task factory;
        ``callers``: the frames of this package above this one); False when
        the task is not to be recorded: a child of an unrecorded task, of a
        sampled-out application span, or a new trace the sampler drops. An
        unrecorded task costs no frame walk."""
        if parent is MUTED:
            return False
        app = app_span_context()
        if parent is None:
            if app is not None:
                if not app.trace_flags.sampled:
                    return False
            elif self.sample_root is not None and not self.sample_root(st.id, coroutine_name(coro), st.start):
                return False
        st.parent = parent
        st.app_parent = app
        st.location = spawn_location(loop, callers + 1)
        st.code = getattr(coro, "cr_code", None)
        st.coroutine = coroutine_name(coro)
        st.internal = not self.show_internal and is_internal_coroutine(coro)
        self.announce(st)
        return True

    def announce(self, st: TaskState) -> None:
        """A task is born: its spawner has one more dependent."""
        parent = st.parent
        if parent is not None:
            parent.dependents += 1
        if self.metrics is not None:
            self.metrics.spawned(st)

    def _eager_spawn(self, factory: Callable[..., Any], loop: Any, coro: Any, kwargs: dict[str, Any]) -> Any:
        tls = self._tls
        try:
            spawner = self._spawner(loop)
            st: TaskState | None = TaskState(next_task_id(), time_ns(), None, self)
            # Called by eager_task_factory: two frames of ours above _spawned.
            if not self._spawned(st, coro, spawner, None, 2):  # type: ignore[arg-type]
                st = None
        except Exception as exc:
            self.count_error("task factory", exc)
            return factory(loop, coro, **kwargs)
        if st is None:
            return self._eager_spawn_muted(factory, loop, coro, kwargs)
        prev_spawning, prev_current = tls.spawning, tls.current
        tls.spawning = tls.current = st
        started = time_ns()
        try:
            task = factory(loop, coro, **kwargs)
        except BaseException:
            tls.spawning, tls.current = prev_spawning, prev_current
            self._spawn_failed(st)
            raise
        tls.spawning = prev_spawning
        try:  # still as the new task: what its first step parked on is its own
            self._spawn_end(st, task, started)
        except Exception as exc:
            self.count_error("task factory", exc)
        tls.current = prev_current
        return task

    def _eager_spawn_muted(
        self, factory: Callable[..., Any], loop: Any, coro: Any, kwargs: dict[str, Any]
    ) -> Any:
        """An eager spawn that is not recorded: its context (copied from the
        current one, unless given) is marked muted, so whatever its first
        step spawns is muted too."""
        context = kwargs.get("context")
        if context is not None:
            try:
                context.run(MUTED_CONTEXT.set, True)
            except RuntimeError:
                context = None
        token = MUTED_CONTEXT.set(True)
        try:
            task = factory(loop, coro, **kwargs)
        finally:
            MUTED_CONTEXT.reset(token)
        return task

    def _spawn_failed(self, st: TaskState) -> None:
        """The factory raised: the task never existed."""
        parent = st.parent
        if parent is not None:
            parent.dependents -= 1

    def _spawn_end(self, st: TaskState, task: Any, started: int) -> None:
        if st.ref is None:
            if not asyncio.isfuture(task):
                self._spawn_failed(st)
                return
            self._bind(st, task)
        if st.init_scheduled:
            return
        # The first step ran inside create_task (the eager task factory).
        if st.ran_eagerly or task.done() or task._fut_waiter is not None:
            st.context = task.get_context()  # 3.12+, as eager task factories
            self._open_poll(st, task, started, ())
            if task.done():
                st.name_hint = name_being_given()
            else:
                st.name_unsure = True
            self._after_poll(st, task, time_ns())

    # -- schedule, poll ------------------------------------------------------

    def _on_schedule(
        self, loop: Any, task: Any, wakeup: bool, args: tuple[Any, ...], st: TaskState | None, context: Any
    ) -> TaskState:
        tls = self._tls
        if st is None:
            spawning = tls.spawning
            if spawning is not None and spawning.ref is None:
                self._bind(spawning, task)
                st = spawning
                if asyncio.current_task(loop) is not task:
                    st.init_scheduled = True  # the first step: not a wake
                    return st
                st.ran_eagerly = True
            else:
                st = self._adopt(task, wakeup, loop, context)
                if st is MUTED or st.init_scheduled:
                    return st
        now = time_ns()
        waker = tls.current or tls.cause
        if waker is MUTED:
            waker = None
        for scope in st.scopes:
            scope.waker = waker
        wait = st.wait
        if wakeup and wait is not None and args and id(args[0]) == wait.future_id:
            future = args[0]
            cause = WakeCause.FUTURE
            if future.cancelled() and cancel_requested(task, st.cancelling):
                cause = WakeCause.CANCEL
                self._dropped(st, "cancelled", wait, now)
            self._woken(st, cause, waker, wait, now)
            if wait.handler is not None:
                wait.handler.woken(wait, future, st, waker, now)
        elif wakeup:
            self._woken(st, WakeCause.FUTURE, waker, None, now)
        else:
            self._woken(st, WakeCause.YIELD if waker is st else WakeCause.SCHEDULE, waker, None, now)
        return st

    def _woken(self, st: TaskState, cause: str, waker: TaskState | None, wait: Wait | None, now: int) -> None:
        """Tokio's ``waker.wake``: the task was scheduled."""
        st.wakes += 1
        if waker is st:
            st.self_wakes += 1
        if cause == WakeCause.FUTURE:
            st.drops += 1  # the wake consumed the registration
        if st.woken_at is None:
            st.woken_at = now
        if st.join_since:
            st.join_idle += now - st.join_since
            st.join_since = 0
        if wait is not None:
            self.event(st, (Event.WAKE, now, cause, waker, wait.resource, wait if wait.id else None))
            if waker is not None and wait.id:
                wait.woken_by(waker)
        else:
            self.event(st, (Event.WAKE, now, cause, waker, None, None))
        if self.lints is not None:
            self.lints.woken(st, now)

    def _dropped(self, st: TaskState, reason: str, wait: Wait, now: int) -> None:
        """Tokio's ``waker.drop``: a registration ended without its future
        completing it."""
        st.drops += 1
        self.event(st, (Event.DROP, now, reason, wait.resource, wait if wait.id else None))

    def poll_begin(self, st: TaskState, task: Any, args: tuple[Any, ...]) -> None:
        """A task's step is about to run (its scheduled arguments: ``args``)."""
        if not self.active:
            return
        try:
            self._open_poll(st, task, time_ns(), args)
        except Exception as exc:
            self.count_error("poll start", exc)

    def _open_poll(self, st: TaskState, task: Any, now: int, args: tuple[Any, ...]) -> None:
        tls = self._tls
        st.outer = tls.current
        tls.current = st
        st.polls += 1
        st.poll_ts = now
        woken = st.woken_at
        # A wake noted inside an eager first poll schedules the next poll.
        if woken is not None and woken <= now:
            st.scheduled += now - woken
            st.woken_at = None
            if self.metrics is not None:
                self.metrics.scheduled(now - woken)
        st.first_poll = not st.polled
        if st.first_poll:
            st.polled = True
            self._note_name(st, task)
        elif st.name_unsure:
            st.name_unsure = False
            self._note_name(st, task)
        wait = st.wait
        st.resumed_at = wait.location if wait is not None else None
        if wait is not None:
            st.wait = None
            self._resume(st, wait, args, now)

    def poll_finish(self, st: TaskState, task: Any) -> None:
        """A task's step has just run."""
        if self._tls.current is not st:
            return  # its start was not seen (instrumentation just turned on or off)
        now = time_ns()
        try:
            self._after_poll(st, task, now)
        except Exception as exc:
            self.count_error("poll end", exc)
        self._tls.current, st.outer = st.outer, None
        if now >= self._next_sweep or self.ended_elsewhere:
            self.sweep(now)

    def poke(self, now: int) -> None:
        """Called by the hand-off's thread on every tick: a loop that has
        not swept for a while (it is idle, parked in ``select()`` with tasks
        waiting) is asked to sweep, with one callback of its own. Decisions
        stay on the loop; the program's callbacks and tasks are not touched."""
        if not self.active or self._poke_pending or now - self._last_sweep < 2 * SWEEP_EVERY_NS:
            return
        if not self._states and not self.ended_elsewhere:
            return
        for loop in list(self._loops):
            try:
                if loop.is_running() and not loop.is_closed():
                    self._poke_pending = True
                    loop.call_soon_threadsafe(self._poked)
            except RuntimeError:  # closed meanwhile
                self._poke_pending = False

    def _poked(self) -> None:
        self._poke_pending = False
        if self.active:
            self.sweep(time_ns())

    def sweep(self, now: int) -> None:
        """What time tells, looked at on the loop: entities ended on other
        threads, and the sweepers (long-lived entities, long waits)."""
        self._next_sweep = now + SWEEP_EVERY_NS
        self._last_sweep = now
        self._states, self._muted = compacted(self._states), compacted(self._muted)
        with contextlib.suppress(RuntimeError, TypeError):  # not on a loop (exit); not weak-referenceable
            self._loops.add(asyncio.get_running_loop())
        ended = self.ended_elsewhere
        while ended:
            try:
                ended.popleft()()
            except IndexError:
                break
            except Exception as exc:
                self.count_error("ended elsewhere", exc)
        for sweeper in self.sweepers:
            try:
                sweeper(now)
            except Exception as exc:
                self.count_error("sweep", exc)

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

    @staticmethod
    def _note_name(st: TaskState, task: Any) -> None:
        name = st.name_hint or task.get_name()
        if name != st.name:
            st.name = name

    def _after_poll(self, st: TaskState, task: Any, now: int) -> None:
        busy = now - st.poll_ts
        st.busy += busy if busy > 0 else 0
        if st.woken_at is not None and st.woken_at < now:
            # Woken during its own poll (a yield): it waits to be run again
            # only from the end of this poll; before that it was busy.
            st.woken_at = now
        if self.metrics is not None:
            self.metrics.polled(busy)
        if self.keep_polls:
            if st.poll_log is None:
                st.poll_log = []
            st.poll_log.append((st.poll_ts, now, True))
        if self.lints is not None:
            self.lints.poll_ended(st, task, now)
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
        """Tokio's ``waker.clone``: the task registered its wake-up."""
        st.parked_at = now  # first: another thread may read both
        st.wait = wait
        st.clones += 1
        if HAS_CANCELLING:
            st.cancelling = task.cancelling()
        if wait.joins:
            st.join_since = now
        op = wait if wait.id else None
        self.event(st, (Event.CLONE, now, wait.resource, op, wait.awaited))
        if op is not None:
            if wait.poll_log is not None:
                wait.poll_log.append((wait.resumed_at or wait.start, now, False))
            if wait.polls > 1 or wait.poll_log is not None:
                # A poll that resumed it left it pending again (a wake that
                # did not complete it): Tokio's ``poll_op``, not ready. (The
                # first poll's end is the span's start: an event only when
                # every poll is asked for.)
                self.event(wait, (Event.POLL_OP, now, wait.source, False))
        if self.lints is not None:
            self.lints.parked(st, wait, now)

    def _classify(self, st: TaskState, task: Any, future: Any, now: int, resumed: Wait | None) -> Wait:
        for classify in self._classifiers:
            wait = classify(st, task, future, now, resumed)
            if wait is not None:
                return wait
        return Wait(future)

    # -- end -----------------------------------------------------------------

    def _close(self, st: TaskState, task: Any, now: int) -> None:
        self._note_name(st, task)
        if task.cancelled():
            st.outcome = Outcome.CANCELLED
        else:
            # ``_exception`` reads the outcome without marking it retrieved, so
            # "Task exception was never retrieved" is still logged as before.
            exc = task._exception
            st.outcome = Outcome.of_exception(exc)
            if st.outcome == Outcome.ERROR:
                st.error = error_info(exc)
        self.forget(st)
        self.end(st, now)
        for listener in self.close_listeners:
            listener(st, task, now)

    def end(self, st: TaskState, now: int) -> None:
        """The task is over (``outcome`` set): its span, or its fold."""
        st.ended = now
        if st.join_since:
            st.join_idle += now - st.join_since
            st.join_since = 0
        if st.error is not None:
            self.policy.must_keep(st, (Event.ERROR, now, st.error))
        if self.lints is not None:
            self.lints.closed(st, now)
        if self.metrics is not None:
            self.metrics.finished(st)
        parent = st.parent
        if parent is not None:
            parent.dependents -= 1
        if not st.internal:
            must = (
                st.outcome in Outcome.FAILED
                or st.lints is not None
                or st.dependents > 0
                or st.id in self.prestarted
            )
            self.policy.ended(st, must, self.policy.min_task_ns if st.outcome == Outcome.OK else 0)
        else:
            st.fate = Fate.FOLDED
            st.events = None
        if st.fate == Fate.FOLDED:
            st.parent = None  # folded: it no longer needs its ancestors alive

    def forget(self, st: TaskState) -> None:
        """Stop following a task that has ended (or is ended at exit)."""
        if self._states.get(st.key) is st:
            del self._states[st.key]
        st.ref = None  # drops the weak reference: its callback will not run

    def _on_task_gone(self, ref: TaskRef) -> None:
        """A task was destroyed while pending ("Task was destroyed but it is
        pending!"): whatever it waited on can no longer wake it. The
        collection may run on any thread: the end is decided on the loop."""
        try:
            st = ref.state
            if st is MUTED:
                if self._muted.get(ref.key) is ref:
                    del self._muted[ref.key]
                return
            if st.ref is not ref:
                return  # closed already
            self.forget(st)
            self.ended_elsewhere.append(lambda: self._lost(st, time_ns()))
        except Exception as exc:
            self.count_error("task gone", exc)

    def _lost(self, st: TaskState, now: int) -> None:
        wait = st.wait
        if wait is not None:
            self._dropped(st, "task destroyed", wait, now)
            if wait.handler is not None:
                wait.handler.abandoned(wait, st, now)
        st.outcome = Outcome.LOST
        self.end(st, now)
        for listener in self.close_listeners:
            listener(st, None, now)
