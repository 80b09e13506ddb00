"""Property: a random small asyncio program takes the same steps, in the same
order, with the same outcomes, with and without instrumentation.

Hypothesis generates programs over tasks, futures (made both by
``loop.create_future()`` and by ``asyncio.Future()``), ``sleep(0)``, joins,
cancellation of tasks and of futures, exceptions, and a shared Lock and Event.
The program records every step it takes (which task, which operation, what it
got) into a list; the same program is run plain, then instrumented, on the same
kind of loop, and the two lists must be equal. Only ``sleep(0)`` is used, so
the order of steps is fully determined by asyncio's scheduling.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_asyncres
from conftest import LOOP_KINDS, run_with
from otel_asyncres.session import current_session

N_FUTURES = 3


@dataclass(frozen=True)
class Op:
    kind: str
    arg: int = 0


@dataclass(frozen=True)
class TaskSpec:
    ops: tuple[Op, ...]
    #: Catch CancelledError around each operation and carry on.
    swallow_cancel: bool
    name_it: bool


@dataclass(frozen=True)
class Program:
    tasks: tuple[TaskSpec, ...]
    main_ops: tuple[Op, ...]
    #: Which futures come from loop.create_future() (True) or asyncio.Future().
    loop_futures: tuple[bool, ...]


def _ops(n_tasks: int, blocking: bool) -> st.SearchStrategy[Op]:
    """Operations; ``blocking`` ones wait for something that only the end of
    main guarantees (a future set, the event set, an earlier task done), so
    main itself never gets them: the program always terminates."""
    index = st.integers(0, max(n_tasks - 1, 0))
    future = st.integers(0, N_FUTURES - 1)
    safe = [
        st.just(Op("sleep0")),
        st.builds(Op, st.just("set_future"), future),
        st.builds(Op, st.just("cancel_future"), future),
        st.builds(Op, st.just("cancel_task"), index),
        st.just(Op("raise")),
        st.just(Op("lock")),
        st.just(Op("event_set")),
        st.just(Op("spawn_child")),
    ]
    if blocking:
        safe += [
            st.builds(Op, st.just("await_future"), future),
            st.builds(Op, st.just("await_task"), index),
            st.just(Op("event_wait")),
        ]
    return st.one_of(*safe)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    n_tasks = draw(st.integers(1, 5))
    tasks = tuple(
        TaskSpec(
            ops=tuple(draw(st.lists(_ops(n_tasks, blocking=True), max_size=6))),
            swallow_cancel=draw(st.booleans()),
            name_it=draw(st.booleans()),
        )
        for _ in range(n_tasks)
    )
    main_ops = tuple(draw(st.lists(_ops(n_tasks, blocking=False), max_size=6)))
    loop_futures = tuple(draw(st.lists(st.booleans(), min_size=N_FUTURES, max_size=N_FUTURES)))
    return Program(tasks, main_ops, loop_futures)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "CancelledError"
    return f"{type(exc).__name__}({exc})"


def interpret(program: Program) -> Callable[[], Coroutine[Any, Any, list[Any]]]:
    """The program as a coroutine function that returns the log of its steps."""

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        log: list[Any] = []
        loop.set_exception_handler(lambda _loop, ctx: log.append(("exception handler", ctx["message"])))
        futures = [loop.create_future() if own else asyncio.Future() for own in program.loop_futures]
        tasks: list[asyncio.Task[Any]] = []
        lock, event = asyncio.Lock(), asyncio.Event()

        async def child(parent: str) -> str:
            log.append((parent + "/child", "start"))
            await asyncio.sleep(0)
            log.append((parent + "/child", "end"))
            return "child of " + parent

        async def step(who: str, i: int, op: Op, index: int | None) -> None:
            if op.kind == "sleep0":
                await asyncio.sleep(0)
                log.append((who, i, "slept"))
            elif op.kind == "await_future":
                log.append((who, i, "got", await futures[op.arg]))
            elif op.kind == "set_future":
                fut = futures[op.arg]
                log.append((who, i, "set", fut.done() or fut.set_result(f"{who}:{i}")))
            elif op.kind == "cancel_future":
                log.append((who, i, "cancel future", futures[op.arg].cancel(f"by {who}")))
            elif op.kind == "cancel_task":
                target = tasks[op.arg] if op.arg < len(tasks) else None
                log.append((who, i, "cancel task", op.arg, target.cancel() if target is not None else None))
            elif op.kind == "await_task":
                # Only tasks made before this one (no cycles, no self-join).
                if (index is not None and op.arg >= index) or op.arg >= len(tasks):
                    log.append((who, i, "join skipped"))
                else:
                    log.append((who, i, "joined", op.arg, await tasks[op.arg]))
            elif op.kind == "raise":
                log.append((who, i, "raising"))
                raise ValueError(f"{who}:{i}")
            elif op.kind == "lock":
                async with lock:
                    log.append((who, i, "locked"))
                    await asyncio.sleep(0)
                log.append((who, i, "unlocked"))
            elif op.kind == "event_wait":
                if event.is_set():
                    log.append((who, i, "event already set"))
                else:
                    await event.wait()
                    log.append((who, i, "event seen"))
            elif op.kind == "event_set":
                event.set()
                log.append((who, i, "event set"))
            elif op.kind == "spawn_child":
                log.append((who, i, "spawned", await asyncio.create_task(child(who))))

        async def runner(index: int, spec: TaskSpec) -> str:
            who = f"T{index}"
            log.append((who, "start"))
            for i, op in enumerate(spec.ops):
                try:
                    await step(who, i, op, index)
                except asyncio.CancelledError as exc:
                    log.append((who, i, "cancelled", exc.args))
                    if not spec.swallow_cancel:
                        raise
                    current = asyncio.current_task()
                    if current is not None and hasattr(current, "uncancel"):
                        current.uncancel()
            log.append((who, "end"))
            return who

        for index, spec in enumerate(program.tasks):
            name = f"T{index}" if spec.name_it else None
            tasks.append(asyncio.create_task(runner(index, spec), name=name))
        for i, op in enumerate(program.main_ops):
            try:
                await step("main", i, op, None)
            except (asyncio.CancelledError, ValueError) as exc:
                log.append(("main", i, "caught", _outcome(exc)))
        # Unblock whatever still waits, in a fixed order, then collect outcomes.
        for k, fut in enumerate(futures):
            if not fut.done():
                fut.set_result(f"final {k}")
        event.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        log.append(("results", [r if isinstance(r, str) else _outcome(r) for r in results]))
        log.append(("states", [(t.done(), t.cancelled()) for t in tasks]))
        if sys.version_info >= (3, 11):
            log.append(("cancelling", [t.cancelling() for t in tasks]))
        log.append(("futures", [(f.done(), f.cancelled()) for f in futures]))
        return log

    return main


def run_instrumented(kind: str, main: Callable[[], Coroutine[Any, Any, list[Any]]]) -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel_asyncres.instrument(tracer_provider=provider, min_task_duration=0, min_wait_duration=0)
    try:
        result: list[Any] = run_with(kind, main)
        session = current_session()
        assert session is not None
        session.handoff.flush()
        assert session.handoff.errors == {}, "the instrumentation counted internal errors"
    finally:
        otel_asyncres.uninstrument()
    assert any(s.name.startswith("task ") for s in exporter.get_finished_spans()), "nothing was instrumented"
    return result


@pytest.mark.parametrize("kind", LOOP_KINDS)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=False,
)
@given(program=programs())
def test_random_programs_take_the_same_steps(kind: str, program: Program) -> None:
    assert current_session() is None
    plain = run_with(kind, interpret(program))
    instrumented = run_instrumented(kind, interpret(program))
    assert instrumented == plain
