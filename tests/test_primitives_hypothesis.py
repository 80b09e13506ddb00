"""Property: random small programs over a Lock, a Semaphore(2), an Event and a
Queue(maxsize=2) take the same steps with and without instrumentation, and the
replayed state of every primitive is its real state, at checkpoints and at the
end.

Hypothesis generates a few tasks, each a list of operations (acquire/release
through ``async with``, put/get and their nowait variants, set/clear/wait,
``task_done``, cancellation of another task, exceptions raised while holding
the lock) and operations under a timeout (``wait_for(..., 0)`` and, on 3.11+,
``asyncio.timeout(0)``: both expire at a point fixed by the scheduling alone,
never by the clock, so the order of steps is fully determined). Every step is
appended to a log. The same program runs plain, then instrumented, on the same
kind of loop; the logs (including the primitives' final states) must be equal,
and the instrumented run's records must replay to the real states.
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

import otel_asyncres
from _replay import Checker, real_state
from conftest import LOOP_KINDS, make_traced, run_with
from otel_asyncres.bridge import semconv as sc
from otel_asyncres.session import current_session

PY311 = sys.version_info >= (3, 11)
#: How many rounds main's final phase unblocks waiters before cancelling them.
FINAL_ROUNDS = 40

#: Operations that may wait for another task; main never does them.
BLOCKING = ["lock", "lock_raise", "sem", "event_wait", "put", "get"]
#: Operations that never wait for long: timeouts of 0, the nowait variants, ...
SAFE = [
    "sleep0",
    "locked",
    "lock_timeout",
    "lock_release_unlocked",
    "sem_timeout",
    "sem_release_extra",
    "event_set",
    "event_clear",
    "event_wait_timeout",
    "put_nowait",
    "get_nowait",
    "put_timeout",
    "get_timeout",
    "task_done",
    "join_timeout",
    "cancel",
]


@dataclass(frozen=True)
class Op:
    kind: str
    #: The task to cancel; for timeouts, 0: wait_for(..., 0), 1: asyncio.timeout(0).
    arg: int = 0


@dataclass(frozen=True)
class TaskSpec:
    ops: tuple[Op, ...]
    #: Catch CancelledError around each operation and carry on.
    swallow_cancel: bool


@dataclass(frozen=True)
class Program:
    tasks: tuple[TaskSpec, ...]
    main_ops: tuple[Op, ...]


def _ops(n_tasks: int, blocking: bool) -> st.SearchStrategy[Op]:
    kinds = SAFE + (BLOCKING if blocking else [])
    return st.builds(Op, st.sampled_from(kinds), st.integers(0, max(n_tasks - 1, 1)))


@st.composite
def programs(draw: st.DrawFn) -> Program:
    n_tasks = draw(st.integers(1, 4))
    tasks = tuple(
        TaskSpec(tuple(draw(st.lists(_ops(n_tasks, True), max_size=6))), draw(st.booleans()))
        for _ in range(n_tasks)
    )
    return Program(tasks, tuple(draw(st.lists(_ops(n_tasks, False), max_size=6))))


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "CancelledError"
    return type(exc).__name__


Check = Callable[..., None]


def interpret(program: Program, check: Check) -> Callable[[], Coroutine[Any, Any, list[Any]]]:
    """The program as a coroutine function returning the log of its steps.
    ``check(label, *objects)`` is called between main's steps (a checkpoint in
    the instrumented run, nothing in the plain one); it never yields. Main
    yields once before each checkpoint, in both runs: the instrumentation
    reads what asyncio changed while a task resumed in an op (a waiter removed
    from its deque) when that poll ends, so checkpoints are taken between polls."""

    async def main() -> list[Any]:
        log: list[Any] = []
        lock, sem, event = asyncio.Lock(), asyncio.Semaphore(2), asyncio.Event()
        q: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
        objects = (lock, sem, event, q, q._finished)
        tasks: list[asyncio.Task[Any]] = []

        async def checkpoint(label: str) -> None:
            await asyncio.sleep(0)
            check(label, *objects)

        async def timed(how: int, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
            if how == 1 and PY311:
                async with asyncio.timeout(0):
                    return await make()
            return await asyncio.wait_for(make(), 0)

        async def step(who: str, i: int, op: Op) -> None:
            kind = op.kind
            if kind == "sleep0":
                await asyncio.sleep(0)
                log.append((who, i, "slept"))
            elif kind == "locked":
                log.append((who, i, "locked?", lock.locked(), sem.locked()))
            elif kind in ("lock", "lock_raise"):
                async with lock:
                    log.append((who, i, "holds lock"))
                    await asyncio.sleep(0)
                    if kind == "lock_raise":
                        raise ValueError(f"{who}:{i}")
                log.append((who, i, "released lock"))
            elif kind == "lock_timeout":
                try:
                    got = await timed(op.arg, lock.acquire)
                except asyncio.TimeoutError:
                    log.append((who, i, "lock timed out"))
                    return
                try:
                    log.append((who, i, "holds lock", got))
                    await asyncio.sleep(0)
                finally:
                    lock.release()
            elif kind == "lock_release_unlocked":
                if not lock.locked():
                    try:
                        lock.release()
                    except RuntimeError:
                        log.append((who, i, "release refused"))
            elif kind == "sem":
                async with sem:
                    log.append((who, i, "holds permit"))
                    await asyncio.sleep(0)
                log.append((who, i, "released permit"))
            elif kind == "sem_timeout":
                try:
                    await timed(op.arg, sem.acquire)
                except asyncio.TimeoutError:
                    log.append((who, i, "permit timed out"))
                    return
                try:
                    log.append((who, i, "holds permit"))
                    await asyncio.sleep(0)
                finally:
                    sem.release()
            elif kind == "sem_release_extra":
                sem.release()
                log.append((who, i, "extra permit"))
            elif kind == "event_set":
                event.set()
                log.append((who, i, "set"))
            elif kind == "event_clear":
                event.clear()
                log.append((who, i, "cleared"))
            elif kind == "event_wait":
                log.append((who, i, "event seen", await event.wait()))
            elif kind == "event_wait_timeout":
                try:
                    log.append((who, i, "event seen", await timed(op.arg, event.wait)))
                except asyncio.TimeoutError:
                    log.append((who, i, "event timed out"))
            elif kind == "put":
                await q.put(f"{who}:{i}")
                log.append((who, i, "put"))
            elif kind == "get":
                log.append((who, i, "got", await q.get()))
            elif kind == "put_nowait":
                try:
                    q.put_nowait(f"{who}:{i}")
                    log.append((who, i, "put"))
                except asyncio.QueueFull:
                    log.append((who, i, "full"))
            elif kind == "get_nowait":
                try:
                    log.append((who, i, "got", q.get_nowait()))
                except asyncio.QueueEmpty:
                    log.append((who, i, "empty"))
            elif kind == "put_timeout":
                try:
                    await timed(op.arg, lambda: q.put(f"{who}:{i}"))
                    log.append((who, i, "put"))
                except asyncio.TimeoutError:
                    log.append((who, i, "put timed out"))
            elif kind == "get_timeout":
                try:
                    log.append((who, i, "got", await timed(op.arg, q.get)))
                except asyncio.TimeoutError:
                    log.append((who, i, "get timed out"))
            elif kind == "task_done":
                try:
                    q.task_done()
                    log.append((who, i, "task done"))
                except ValueError:
                    log.append((who, i, "too many task_done"))
            elif kind == "join_timeout":
                try:
                    await timed(op.arg, q.join)
                    log.append((who, i, "joined"))
                except asyncio.TimeoutError:
                    log.append((who, i, "join timed out"))
            elif kind == "cancel":
                target = tasks[op.arg] if op.arg < len(tasks) else None
                log.append((who, i, "cancel", op.arg, target.cancel() if target is not None else None))
            else:  # pragma: no cover
                raise AssertionError(kind)

        async def runner(index: int, spec: TaskSpec) -> str:
            who = f"T{index}"
            log.append((who, "start"))
            for i, op in enumerate(spec.ops):
                try:
                    await step(who, i, op)
                except ValueError as exc:
                    log.append((who, i, "raised", str(exc)))
                except asyncio.CancelledError:
                    log.append((who, i, "cancelled"))
                    if not spec.swallow_cancel:
                        raise
                    current = asyncio.current_task()
                    if current is not None and hasattr(current, "uncancel"):
                        current.uncancel()
            log.append((who, "end"))
            return who

        for index, spec in enumerate(program.tasks):
            tasks.append(asyncio.create_task(runner(index, spec)))
        await checkpoint("spawned")
        for i, op in enumerate(program.main_ops):
            try:
                await step("main", i, op)
            except (asyncio.CancelledError, ValueError) as exc:
                log.append(("main", i, "caught", _outcome(exc)))
            await checkpoint(f"main step {i} ({op.kind})")
        # Unblock whatever waits, in a fixed order, for a bounded number of rounds.
        for round_ in range(FINAL_ROUNDS):
            if all(t.done() for t in tasks):
                break
            event.set()
            if q.full():
                log.append(("final", round_, "got", q.get_nowait()))
            else:
                q.put_nowait(("final", round_))
            await checkpoint(f"final round {round_}")
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await checkpoint("gathered")
        log.append(("results", [x if isinstance(x, str) else _outcome(x) for x in results]))
        log.append(("states", [real_state(obj) for obj in objects]))
        return log

    return main


def _no_check(label: str, *objs: Any) -> None:
    pass


def run_instrumented(kind: str, program: Program) -> list[Any]:
    traced = make_traced()
    try:
        ck = Checker(traced)
        log: list[Any] = run_with(kind, interpret(program, ck.check))
        spans = ck.verify()
    finally:
        otel_asyncres.uninstrument()
    # Every task ended, so every op did: none is left open at exit.
    ops = [s for s in spans if s.name.startswith("async_op ")]
    assert all(sc.UNFINISHED not in s.attributes for s in ops), [s.name for s in ops]
    assert all(sc.ASYNC_OP_OUTCOME in s.attributes for s in ops)
    return log


@pytest.mark.parametrize("kind", LOOP_KINDS)
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(program=programs())
def test_random_programs_same_steps_and_replayed_state(kind: str, program: Program) -> None:
    assert current_session() is None
    plain = run_with(kind, interpret(program, _no_check))
    instrumented = run_instrumented(kind, program)
    assert instrumented == plain
