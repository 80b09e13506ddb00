"""What a spawn looks like from inside asyncio: facts the task tracker reads.

The C Task and the pure-Python one schedule their steps and wake-ups through
``loop.call_soon`` (DESIGN.md §3): a step arrives as a ``TaskStepMethWrapper``
(or the bound ``Task.__step``), a wake-up as the bound ``task_wakeup`` (or
``Task.__wakeup``). The helpers here recognise those callbacks, read a new
task's coroutine without running it, and read the application's span at
spawn: the one place the current OpenTelemetry context is read.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import traceback
from types import CoroutineType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace

from ..model import ErrorInfo
from .frames import OWN_FRAME, is_runtime_file


def _step_wrapper_type() -> type:
    """The C Task's step callback type, found by creating one task."""

    async def noop() -> None:
        pass

    # Not new_event_loop(): that would create the global event loop policy,
    # which a plain program only has once it asks for one (CPython's tests
    # check that asyncio.events._event_loop_policy is as they found it).
    loop = asyncio.SelectorEventLoop()
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


STEP_TYPE = _step_wrapper_type()
PY_TASK = getattr(asyncio.tasks, "_PyTask", None)
#: The C Task and the pure-Python one are unrelated classes.
TASK_TYPES: tuple[type, ...] = (asyncio.Task,) if PY_TASK is None else (asyncio.Task, PY_TASK)
PY_STEP = getattr(PY_TASK, "_Task__step", None)
PY_WAKEUP = getattr(PY_TASK, "_Task__wakeup", None)
HAS_CANCELLING = sys.version_info >= (3, 11)

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


def name_being_given() -> str | None:
    """The ``name`` a create_task frame above is about to give."""
    frame = sys._getframe(2 * OWN_FRAME)
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
    """An exception as an entity keeps it: formatted where it happened."""
    cls = type(exc)
    module = cls.__module__
    qualname = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    stack = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
    return ErrorInfo(qualname, str(exc), stack)


def coroutine_name(coro: Any) -> str:
    name = getattr(coro, "__qualname__", None)
    if not isinstance(name, str):
        return type(coro).__qualname__
    if name == _UVLOOP_WRAPPER:
        return _uvloop_main(coro) or name
    return name


#: ``uvloop.run(main)`` runs ``main`` inside a wrapper coroutine of its own:
#: the root task is named after the program's coroutine, as under asyncio.run.
_UVLOOP_WRAPPER = "run.<locals>.wrapper"


def _uvloop_main(wrapper: Any) -> str | None:
    code = getattr(wrapper, "cr_code", None)
    frame = getattr(wrapper, "cr_frame", None)
    if code is None or frame is None or "uvloop" not in code.co_filename:
        return None
    try:
        main = frame.f_locals.get("main")  # the closure's cell, readable before the first step
    except Exception:
        return None
    name = getattr(main, "__qualname__", None)
    return name if isinstance(name, str) else None


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


def is_internal_coroutine(coro: Any) -> bool:
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    return (
        code is not None
        and is_runtime_file(code.co_filename)
        and getattr(coro, "__qualname__", None) in _HOUSEKEEPING
    )


def app_span_context() -> Any:
    """The application's active span (a SpanContext), the one read of the
    current context (most programs have no OpenTelemetry context at all: one
    call then)."""
    return _span_context_of(otel_context.get_current())


def app_span_context_in(context: Any) -> Any:
    """The application's active span in a task's own context, read where it
    is not the current one (at the end of a poll, on the loop's stack)."""
    if context is None:
        return None
    if _OTEL_CONTEXT_VAR is not None:
        return _span_context_of(context.get(_OTEL_CONTEXT_VAR))
    return _span_context_of(context.run(otel_context.get_current))


def _span_context_of(current: Any) -> Any:
    if not current:
        return None
    ctx = otel_trace.get_current_span(current).get_span_context()
    return ctx if ctx.is_valid else None


#: Where OpenTelemetry keeps its context in a ``contextvars.Context`` (its
#: default runtime context); None for another runtime context, read by
#: running in the task's context instead.
_OTEL_CONTEXT_VAR: Any = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)


def not_started(coro: Any) -> bool:
    """Whether a pending task's next step is its first: its coroutine is
    neither running nor suspended. On 3.11+ this reads ``cr_suspended`` and
    never ``cr_frame``, which would make a frame object that lives as long as
    the coroutine (168 bytes per live task, for every task registered on
    3.12+). A closed coroutine of a pending task counts as not started: its
    task's next step is its first, the one that raises "cannot reuse already
    awaited coroutine"."""
    if type(coro) is CoroutineType:
        if coro.cr_running:
            return False
        suspended = getattr(coro, "cr_suspended", None)  # 3.11+
        if suspended is not None:
            return not suspended
        frame = coro.cr_frame  # 3.10: every frame is an object already
        return frame is not None and frame.f_lasti < 0
    if inspect.isgenerator(coro):
        return inspect.getgeneratorstate(coro) == inspect.GEN_CREATED
    return False


def cancel_requested(task: Any, cancelling_before: int) -> bool:
    """Whether a cancelled future woke its task because the task itself was
    cancelled (the wait abandoned), rather than the resource cancelling it.
    Python 3.10 has no ``cancelling()``: every cancelled wake counts."""
    if HAS_CANCELLING:
        return bool(task.cancelling() > cancelling_before)
    return True
