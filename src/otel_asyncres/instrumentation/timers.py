"""Timers: ``asyncio.sleep``, ``asyncio.timeout`` and ``wait_for``, of kind Timer.

Each sleep that waits is its own resource (Tokio's ``Sleep``), made when the
task parks in it and ended when the sleep is over; its op is ``sleep``. The
resource is keyed by the sleep's coroutine object, which lives exactly as long
as the sleep. ``sleep(0)`` does not wait on a timer: it is a yield, recorded as
the task waking itself.

A timeout is the resource ``asyncio.Timeout`` (state ``deadline``, wall-clock
seconds since the epoch, ``budget``, the time it allowed when its deadline was
set, in ms, and ``expired``); the scope it guards is its op, ``timeout``, from
entering to leaving the ``async with``, ending ``timed_out`` when the deadline
passed. Like a sleep's timer, the resource folds into that one op: a timeout is
one span, which carries its state (a ``reschedule()`` inside the scope is an
op state update of ``budget``). On 3.11+ both ``asyncio.timeout`` and (3.12+)
``wait_for`` go through the ``Timeout`` class, whose state writes are watched;
on 3.10 and 3.11 ``wait_for`` is its own op, ``wait_for``, on a Timeout made
for the call.
"""

from __future__ import annotations

import asyncio
import sys
import time
import weakref
from types import FrameType
from typing import Any

from ..model import Outcome, StateValue
from .frames import user_location
from .operations import ALWAYS, OperationWaits, OpSpec
from .patching import Patcher
from .resources import Family, ResourceRegistry, ResourceState
from .task_state import TaskState
from .waits import Ops, ScopeHandler, Wait

# -- sleep ------------------------------------------------------------------------------------


def _sleep_state(coro: Any) -> dict[str, StateValue]:
    return {"duration": float(coro.cr_frame.f_locals["delay"]) * 1000.0}


SLEEP = Family(None, "asyncio.sleep", "Timer", _sleep_state, units={"duration": "ms"}, folds_into_op=True)


def _op_coroutine(frame: FrameType, coro: Any) -> Any:
    return coro


# -- deadlines ----------------------------------------------------------------------------------

#: Wall-clock deadlines by timer object, and the time each allowed (ms),
#: converted once from the loop's clock per deadline set, so that every read
#: of the state gives the same value.
_deadlines: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_budgets: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_converted: weakref.WeakKeyDictionary[Any, float | None] = weakref.WeakKeyDictionary()


def _set_deadline(timer: Any, when: float | None, asked: float | None = None) -> float:
    """Note a deadline on the loop's clock (None: none); the budget it
    allows, in ms (-1 for none): ``asked``, the delay the program gave, or
    else what is left until the deadline now."""
    try:
        left = None if when is None else when - asyncio.get_running_loop().time()
    except RuntimeError:
        left = None
    _deadlines[timer] = -1.0 if left is None else time.time() + left
    if asked is not None:
        left = float(asked)
    budget = _budgets[timer] = -1.0 if left is None else round(left * 1000.0, 3)
    return budget


#: ``asyncio.timeout(delay)``, whose ``delay`` is the budget a Timeout it
#: makes was given (3.11+).
_TIMEOUT_FACTORY = getattr(getattr(asyncio, "timeout", None), "__code__", None)


def _asked_delay(frame: FrameType) -> float | None:
    """The delay given to ``asyncio.timeout()`` if it is making the Timeout
    whose ``__init__`` is ``frame``."""
    caller = frame.f_back
    if caller is None or caller.f_code is not _TIMEOUT_FACTORY:
        return None
    delay = caller.f_locals.get("delay")
    return float(delay) if isinstance(delay, int | float) else None


def _deadline(timer: Any) -> float:
    return _deadlines.get(timer, -1.0)


def _budget(timer: Any) -> float:
    return _budgets.get(timer, -1.0)


# -- asyncio.timeout (3.11+) ---------------------------------------------------------------------

_TIMEOUT_CLASS: Any = getattr(getattr(asyncio, "timeouts", None), "Timeout", None)


def _timeout_state(timeout: Any) -> dict[str, StateValue]:
    return {"deadline": _deadline(timeout), "budget": _budget(timeout), "expired": timeout.expired()}


class TimeoutScopes:
    """Opens the ``timeout`` op when a Timeout is entered, ends it on exit."""

    def __init__(self, ops: Ops) -> None:
        self.ops = ops
        self._open: weakref.WeakKeyDictionary[Any, Wait] = weakref.WeakKeyDictionary()

    def on_write(
        self,
        registry: ResourceRegistry,
        rs: ResourceState,
        timeout: Any,
        name: str,
        frame: FrameType,
        st: TaskState | None,
    ) -> None:
        if name == "_when":
            when = timeout._when
            if timeout not in _converted or _converted[timeout] != when:
                _converted[timeout] = when
                budget = _set_deadline(timeout, when, _asked_delay(frame))
                registry.observe(timeout, rs)
                scope = self._open.get(timeout)
                if scope is not None:  # rescheduled inside the scope
                    self.ops.state(scope, "budget", budget, time.time_ns())
            return
        state = timeout._state.name
        if state == "ENTERED" and st is not None:
            opened = self.ops.open(st, None, rs, "timeout", user_location(), ScopeHandler(), time.time_ns())
            self._open[timeout] = opened
            st.scopes = (*st.scopes, opened)
        elif state in ("EXITED", "EXPIRED") and timeout in self._open:
            scope = self._open.pop(timeout)
            if st is not None:
                st.scopes = tuple(w for w in st.scopes if w is not scope)
            outcome = Outcome.TIMED_OUT if state == "EXPIRED" else Outcome.OK
            self.ops.completed(scope, time.time_ns(), outcome, waker=scope.waker)


# -- wait_for on 3.10 and 3.11 ----------------------------------------------------------------------


def _wait_for_state(coro: Any) -> dict[str, StateValue]:
    """Expired: the waiter was released and the deadline has passed (the
    timer fired), whatever became of the awaited future since."""
    local = coro.cr_frame.f_locals
    waiter, handle = local.get("waiter"), local.get("timeout_handle")
    expired = bool(
        waiter is not None and waiter.done() and handle is not None and handle.when() <= local["loop"].time()
    )
    return {"deadline": _deadline(coro), "budget": _budget(coro), "expired": expired}


def _wait_for_resource(frame: FrameType, coro: Any) -> Any:
    if coro not in _deadlines:
        timeout = frame.f_locals.get("timeout")
        if timeout is None:
            _set_deadline(coro, None)
        else:
            _deadlines[coro] = time.time() + float(timeout)
            _budgets[coro] = round(float(timeout) * 1000.0, 3)
    return coro


def _wait_for_done(coro: Any, future: Any) -> bool:
    fut = coro.cr_frame.f_locals.get("fut")
    return fut is None or bool(fut.done())


def _wait_for_outcome(coro: Any) -> str | None:
    frame = coro.cr_frame
    return Outcome.TIMED_OUT if frame is not None and _wait_for_state(coro)["expired"] else None


# -- installation --------------------------------------------------------------------------------------

_TIMEOUT_UNITS = {"deadline": "s", "budget": "ms"}


def install(registry: ResourceRegistry, waits: OperationWaits, ops: Ops, patcher: Patcher) -> None:
    waits.add(
        asyncio.tasks.sleep,
        OpSpec("sleep", SLEEP, ALWAYS, resource=_op_coroutine, closes_resource=True),
    )
    if _TIMEOUT_CLASS is not None:
        scopes = TimeoutScopes(ops)
        family = Family(
            _TIMEOUT_CLASS,
            "asyncio.Timeout",
            "Timer",
            _timeout_state,
            watched={"_state", "_when"},
            units=_TIMEOUT_UNITS,
            on_write=scopes.on_write,
            factories=(
                getattr(asyncio, "timeout", None),
                getattr(asyncio, "timeout_at", None),
                asyncio.wait_for,
            ),
            folds_into_op=True,
        )
        registry.add_family(family)
        registry.hook_class(_TIMEOUT_CLASS, patcher)
    if sys.version_info < (3, 12):
        wait_for = Family(
            None, "asyncio.Timeout", "Timer", _wait_for_state, units=_TIMEOUT_UNITS, folds_into_op=True
        )
        spec = OpSpec(
            "wait_for",
            wait_for,
            _wait_for_done,
            resource=_wait_for_resource,
            outcome=_wait_for_outcome,
            closes_resource=True,
        )
        waits.add(asyncio.tasks.wait_for, spec)
