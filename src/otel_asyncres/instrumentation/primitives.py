"""asyncio's synchronisation primitives and queues, described as resources.

Each primitive is a ``Family`` (its state, read from the object itself, and
the attribute writes that change it) plus the ``OpSpec`` of every method a task
can wait in. The state names are a contract (docs/mapping.md). Everything here
is read from what asyncio itself keeps, so it holds on every path: success,
cancellation, timeouts, exceptions and the non-blocking variants alike.
"""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

from ..model import Outcome, StateValue
from .operations import ALWAYS, OperationWaits, OpSpec
from .patching import Patcher
from .resources import Family, ResourceRegistry, ResourceState
from .task_state import MUTED_CONTEXT, TaskState


def _never(obj: Any, future: Any) -> bool:
    """Not done on resume: the op goes on (re-acquiring a lock, re-checking a
    predicate) and ends when it stops touching its resources or parks again."""
    return False


# -- Lock -------------------------------------------------------------------------


def _lock_state(lock: Any) -> tuple[StateValue, ...]:
    return bool(lock._locked), len(lock._waiters or ())


def _lock_owner(
    registry: ResourceRegistry,
    rs: ResourceState,
    lock: Any,
    name: str,
    frame: FrameType,
    st: TaskState | None,
) -> None:
    """The task that writes ``_locked = True`` holds the lock (acquired outside
    any task, it has no holder to name); whoever unlocks it, its holder lets go."""
    for holder in rs.holders:  # a tuple: let_go replaces it
        registry.let_go(rs, holder)
    if lock._locked and st is not None:
        registry.hold(rs, st)


LOCK = Family(
    asyncio.Lock,
    "asyncio.Lock",
    "Sync",
    _lock_state,
    watched={"_locked"},
    deltas={"waiters"},
    on_write=_lock_owner,
    fields=("locked", "waiters"),
)

# -- Semaphore, BoundedSemaphore -----------------------------------------------


def _semaphore_state(sem: Any) -> tuple[StateValue, ...]:
    return int(sem._value), len(sem._waiters or ())


_WAKE_UP_NEXT = asyncio.Semaphore._wake_up_next.__code__


def _permit_holders(
    registry: ResourceRegistry, rs: ResourceState, sem: Any, name: str, frame: FrameType, st: TaskState | None
) -> None:
    """Who holds permits. A release hands its permit straight to a waiter
    (``_wake_up_next`` takes it on the waiter's behalf): that waiter holds it
    from its wake on."""
    before = rs.previous.get("permits")
    if not isinstance(before, int):
        return
    delta = int(sem._value) - before
    if delta < 0:
        if frame.f_code is _WAKE_UP_NEXT:
            rs.handoffs += -delta
        elif st is not None:
            for _ in range(-delta):
                registry.hold(rs, st)
    elif delta > 0:
        for _ in range(delta):
            if st is not None and st in rs.holders:
                registry.let_go(rs, st)
            elif rs.holders:
                registry.let_go(rs, rs.holders[0])


def _permit_handed_over(registry: ResourceRegistry, rs: ResourceState, st: TaskState) -> None:
    if rs.handoffs > 0:
        rs.handoffs -= 1
        registry.hold(rs, st)


def _semaphore(cls: type, name: str) -> Family:
    return Family(
        cls,
        name,
        "Sync",
        _semaphore_state,
        watched={"_value"},
        deltas={"permits", "waiters"},
        on_write=_permit_holders,
        on_wake=_permit_handed_over,
        fields=("permits", "waiters"),
    )


SEMAPHORE = _semaphore(asyncio.Semaphore, "asyncio.Semaphore")
BOUNDED_SEMAPHORE = _semaphore(asyncio.BoundedSemaphore, "asyncio.BoundedSemaphore")

# -- Event, Condition -------------------------------------------------------------


def _event_state(event: Any) -> tuple[StateValue, ...]:
    return bool(event._value), len(event._waiters)


EVENT = Family(
    asyncio.Event,
    "asyncio.Event",
    "Sync",
    _event_state,
    watched={"_value"},
    deltas={"waiters"},
    fields=("is_set", "waiters"),
)


def _condition_state(cond: Any) -> tuple[StateValue, ...]:
    return (len(cond._waiters),)


#: ``_waiters`` is written once, in ``__init__``: that write is how a new
#: Condition is seen. Its waiters change inside the deque: they are observed
#: when a task parks or resumes in one of its ops.
CONDITION = Family(
    asyncio.Condition,
    "asyncio.Condition",
    "Sync",
    _condition_state,
    watched={"_waiters"},
    deltas={"waiters"},
    # Notifying takes the lock: its holder is the one a waiter waits for.
    held_through=lambda cond: cond._lock,
    fields=("waiters",),
)

# -- Barrier (3.11+) -------------------------------------------------------------------


def _barrier_state(barrier: Any) -> tuple[StateValue, ...]:
    return barrier._parties, barrier.n_waiting, barrier.broken


def _barrier_outcome(barrier: Any) -> str | None:
    """A party woken by an abort or a reset raises BrokenBarrierError."""
    return Outcome.ERROR if barrier._state.name in ("BROKEN", "RESETTING") else None


_BARRIER_CLASS: Any = getattr(asyncio, "Barrier", None)
BARRIER = (
    Family(
        _BARRIER_CLASS,
        "asyncio.Barrier",
        "Sync",
        _barrier_state,
        watched={"_count", "_state"},
        fields=("parties", "arrived", "broken"),
    )
    if _BARRIER_CLASS is not None
    else None
)

# -- Queues ------------------------------------------------------------------------------

_QUEUE_SHUTDOWN = hasattr(asyncio.Queue, "shutdown")  # 3.13
_QUEUE_FIELDS: tuple[str, ...] = ("size", "maxsize", "getters", "putters", "unfinished_tasks")
_QUEUE_FIELDS += ("shutdown",) * _QUEUE_SHUTDOWN


def _queue_state(queue: Any) -> tuple[StateValue, ...]:
    state = (queue.qsize(), queue.maxsize, len(queue._getters), len(queue._putters), queue._unfinished_tasks)
    if _QUEUE_SHUTDOWN:  # 3.13; read even mid-construction, so it waits until set
        return (*state, bool(queue._is_shutdown))
    return state


def _queue(cls: type, name: str) -> Family:
    return Family(
        cls,
        name,
        "Channel",
        _queue_state,
        # ``_queue`` is made last (by ``_init``, which subclasses override), then
        # on 3.13 ``_is_shutdown``: the queue is whole after both.
        watched={"_unfinished_tasks", "_is_shutdown", "_queue"},
        deltas={"size", "getters", "putters", "unfinished_tasks"},
        fields=_QUEUE_FIELDS,
    )


QUEUE = _queue(asyncio.Queue, "asyncio.Queue")
PRIORITY_QUEUE = _queue(asyncio.PriorityQueue, "asyncio.PriorityQueue")
LIFO_QUEUE = _queue(asyncio.LifoQueue, "asyncio.LifoQueue")


def _shut_down(queue: Any) -> bool:
    return bool(getattr(queue, "_is_shutdown", False))


def _get_ready(queue: Any, future: Any) -> bool:
    return bool(not queue.empty() or _shut_down(queue))


def _put_ready(queue: Any, future: Any) -> bool:
    return bool(not queue.full() or _shut_down(queue))


def _get_outcome(queue: Any) -> str | None:
    """A get that finds the queue shut down and empty raises QueueShutDown."""
    return Outcome.ERROR if _shut_down(queue) and queue.empty() else None


def _put_outcome(queue: Any) -> str | None:
    """A put into a shut-down queue raises QueueShutDown."""
    return Outcome.ERROR if _shut_down(queue) else None


def _hook_observing(cls: type, name: str, registry: ResourceRegistry, patcher: Patcher) -> None:
    """Observe the queue after a method that changes it without writing a
    watched attribute (``get_nowait`` only calls ``_wakeup_next``). asyncio's
    versions cannot raise, so no frame of ours shows in a traceback."""
    original = getattr(cls, name)

    def observing(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            if registry.active:
                rs = registry._states.get(id(self))  # as registry.get, a call less per item
                if rs is not None or not MUTED_CONTEXT.get():
                    try:
                        registry.observe(self, rs)
                    except Exception as exc:
                        registry.count_error(f"Queue.{name}", exc)

    patcher.replace(cls, name, observing)


# -- installation ---------------------------------------------------------------------------


def install(registry: ResourceRegistry, waits: OperationWaits, patcher: Patcher) -> None:
    families = [LOCK, SEMAPHORE, BOUNDED_SEMAPHORE, EVENT, CONDITION, QUEUE, PRIORITY_QUEUE, LIFO_QUEUE]
    if BARRIER is not None:
        families.append(BARRIER)
    hooked: set[type] = set()
    for family in families:
        registry.add_family(family)
        assert family.cls is not None
        # One __setattr__ per class that defines its own state (the
        # subclasses, BoundedSemaphore or PriorityQueue, inherit it).
        if not any(issubclass(family.cls, h) for h in hooked):
            registry.hook_class(family.cls, patcher)
            hooked.add(family.cls)
    _hook_observing(asyncio.Queue, "_wakeup_next", registry, patcher)
    if hasattr(asyncio.Queue, "shutdown"):
        _hook_observing(asyncio.Queue, "shutdown", registry, patcher)

    waits.add(asyncio.Lock.acquire, OpSpec("Lock.acquire", LOCK, ALWAYS))
    waits.add(asyncio.Semaphore.acquire, OpSpec("Semaphore.acquire", SEMAPHORE, ALWAYS))
    waits.add(asyncio.Event.wait, OpSpec("Event.wait", EVENT, ALWAYS))
    for method in ("wait", "wait_for"):
        spec = OpSpec(f"Condition.{method}", CONDITION, _never, goes_on_when_cancelled=True)
        waits.add(getattr(asyncio.Condition, method), spec)
    if BARRIER is not None:
        spec = OpSpec("Barrier.wait", BARRIER, _never, outcome=_barrier_outcome, goes_on_when_cancelled=True)
        waits.add(_BARRIER_CLASS.wait, spec)
    waits.add(asyncio.Queue.get, OpSpec("Queue.get", QUEUE, _get_ready, outcome=_get_outcome))
    waits.add(asyncio.Queue.put, OpSpec("Queue.put", QUEUE, _put_ready, outcome=_put_outcome))
    waits.add(asyncio.Queue.join, OpSpec("Queue.join", QUEUE, ALWAYS))
