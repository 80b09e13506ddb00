"""asyncio's primitives as resources: the replayed state is the real state.

For each primitive (Lock, Semaphore, BoundedSemaphore, Event, Condition,
Barrier, Queue and its Priority/Lifo variants, and each sleep) a program runs a
path (success, cancellation while waiting, timeout, exception, the non-blocking
variants and their errors ...) and takes checkpoints: at each one the real
state is read from the object itself, and the time noted. Afterwards, from the
exported spans alone, replaying the resource's ``state_update`` events (the
first, at the span's start, is its whole initial state) up to each checkpoint
must give exactly the real state there; replaying all of them must give the
real final state; each window alone must replay to the state its
``asyncio.resource.state.*`` attributes say.

Checkpoints are taken between polls (after the program yielded), or inside a
poll right after asyncio wrote one of the primitive's attributes (a Lock's
``_locked``): what asyncio changes in place while a task resumes inside an op
(removing its waiter from a deque) is read when that poll ends.

The async ops are checked too: one span per operation that waited, parented to
the waiting task, linked to its resource and to the task that woke it, with
its polls and outcome; and the holders the instrumentation keeps in-process.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

import otel_asyncres
from _replay import ASYNCIO_DIR, PACKAGE_DIR, RID, Checker, final_attributes, real_state
from conftest import Traced, by_name, events, make_traced, one, run_with, state_updates
from otel_asyncres.bridge import semconv as sc
from otel_asyncres.session import current_session

PY311 = sys.version_info >= (3, 11)
PY313 = sys.version_info >= (3, 13)
needs_barrier = pytest.mark.skipif(not PY311, reason="asyncio.Barrier is new in 3.11")
needs_timeout = pytest.mark.skipif(not PY311, reason="asyncio.timeout is new in 3.11")
needs_shutdown = pytest.mark.skipif(not PY313, reason="Queue.shutdown is new in 3.13")

THIS_FILE = os.path.abspath(__file__)


@pytest.fixture
def ck(traced: Traced) -> Checker:
    return Checker(traced)


def resource_span(spans: list[ReadableSpan], rid: int) -> ReadableSpan:
    (span,) = [s for s in spans if s.name.startswith("resource ") and s.attributes[RID] == rid]
    return span


def ops(spans: list[ReadableSpan], source: str) -> list[ReadableSpan]:
    return sorted(by_name(spans, f"async_op {source}"), key=lambda s: s.start_time)


def task_span(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    return one(spans, f"task {name}")


def main_span(spans: list[ReadableSpan]) -> ReadableSpan:
    (span,) = [s for s in spans if s.name.startswith("task ") and s.name.endswith(".main")]
    return span


def links(span: ReadableSpan) -> dict[str, int]:
    return {link.attributes[sc.LINK_RELATION]: link.context.span_id for link in span.links}


def polls(spans: list[ReadableSpan], op: ReadableSpan) -> list[bool]:
    children = [s for s in spans if s.name == "poll" and s.parent and s.parent.span_id == op.context.span_id]
    return [p.attributes[sc.POLL_IS_READY] for p in sorted(children, key=lambda p: p.start_time)]


def poll_ops(op: ReadableSpan) -> list[bool]:
    return [e.attributes["is_ready"] for e in events(op, "poll_op")]


def check_op(
    spans: list[ReadableSpan],
    op: ReadableSpan,
    *,
    source: str,
    task: ReadableSpan,
    resource: ReadableSpan | None,
    outcome: str,
    waker: ReadableSpan | None = None,
) -> None:
    """An op span as the mapping describes it."""
    assert op.attributes[sc.ASYNC_OP_SOURCE] == source
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == outcome
    assert op.parent is not None and op.parent.span_id == task.context.span_id
    assert op.attributes[sc.TASK_ID] == task.attributes[sc.TASK_ID]
    relations = links(op)
    if resource is not None:
        assert relations["resource"] == resource.context.span_id
        assert op.attributes[sc.RESOURCE_ID] == resource.attributes[sc.RESOURCE_ID]
    if waker is not None:
        assert relations["woken_by"] == waker.context.span_id
        assert op.attributes[sc.WAKER_TASK_ID] == waker.attributes[sc.TASK_ID]
    assert {e.attributes["op_name"] for e in events(op, "poll_op")} == {source}
    ready = poll_ops(op)
    assert ready and ready[-1] is True and not any(ready[:-1]), ready
    assert polls(spans, op) == ready
    assert op.attributes[sc.ASYNC_OP_POLLS] == len(ready)
    assert op.attributes[sc.CODE_FILE_PATH] == THIS_FILE


async def settle(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def finish(*tasks: asyncio.Task[Any]) -> list[Any]:
    return await asyncio.gather(*tasks, return_exceptions=True)


# -- Lock --------------------------------------------------------------------------------


def test_lock_contended_acquire(ck, run):
    seen = {}

    async def waiter(lock):
        await lock.acquire()
        seen["holders in waiter"] = (ck.holders(lock), ck.task_id())
        ck.check("waiter holds", lock)
        lock.release()
        ck.check("waiter released without a waiter", lock)

    async def main():
        lock = asyncio.Lock()
        ck.check("created", lock)
        assert not lock.locked()
        await lock.acquire()
        assert lock.locked()
        ck.check("held by main", lock)
        seen["main holds"] = (ck.holders(lock), ck.task_id())
        w = asyncio.create_task(waiter(lock), name="waiter")
        await asyncio.sleep(0)
        ck.check("one waiter", lock)
        lock.release()
        ck.check("released with a waiter", lock)
        await w
        ck.check("end", lock)
        seen["end"] = ck.holders(lock)
        return lock

    lock = run(main)
    holders, main_id = seen["main holds"]
    assert holders == [main_id]
    holders, waiter_id = seen["holders in waiter"]
    assert holders == [waiter_id]
    assert seen["end"] == []
    spans = ck.verify()
    res = resource_span(spans, ck.rid(lock))
    assert res.name == "resource asyncio.Lock"
    assert res.attributes[sc.RESOURCE_KIND] == "Sync"
    assert res.attributes[sc.RESOURCE_IS_INTERNAL] is False
    assert res.attributes[sc.CODE_FUNCTION_NAME].endswith("main")
    (op,) = ops(spans, "Lock.acquire")
    w_span, m_span = task_span(spans, "waiter"), main_span(spans)
    check_op(spans, op, source="Lock.acquire", task=w_span, resource=res, outcome="ok", waker=m_span)
    assert poll_ops(op) == [False, True]
    assert op.attributes[sc.CODE_FUNCTION_NAME].endswith("waiter")
    assert w_span.attributes[sc.TASK_ID] == waiter_id
    (wake,) = events(w_span, "waker.wake")
    assert wake.attributes[sc.RESOURCE_ID] == res.attributes[sc.RESOURCE_ID]
    assert wake.attributes[sc.WAKER_TASK_ID] == m_span.attributes[sc.TASK_ID]


def test_lock_uncontended_creates_no_op_but_updates_state(ck, run):
    async def main():
        lock = asyncio.Lock()
        async with lock:
            ck.check("inside", lock)
        ck.check("after", lock)
        async with lock:
            pass
        return lock

    lock = run(main)
    spans = ck.verify()
    assert ops(spans, "Lock.acquire") == []
    updates = [e.attributes for e in state_updates(resource_span(spans, ck.rid(lock)))]
    assert [u["locked"] for u in updates] == [True, False, True, False]
    assert {u["locked.op"] for u in updates} == {"override"}


def test_lock_waiter_cancelled(ck, run):
    async def waiter(lock):
        await lock.acquire()

    async def main():
        lock = asyncio.Lock()
        await lock.acquire()
        w = asyncio.create_task(waiter(lock), name="waiter")
        await asyncio.sleep(0)
        ck.check("parked", lock)
        w.cancel()
        await finish(w)
        assert w.cancelled()
        ck.check("waiter cancelled", lock)
        lock.release()
        ck.check("released", lock)
        return lock

    lock = run(main)
    assert real_state(lock) == {"locked": False, "waiters": 0}
    spans = ck.verify()
    (op,) = ops(spans, "Lock.acquire")
    w_span = task_span(spans, "waiter")
    check_op(
        spans,
        op,
        source="Lock.acquire",
        task=w_span,
        resource=resource_span(spans, ck.rid(lock)),
        outcome="cancelled",
    )
    assert w_span.attributes[sc.TASK_OUTCOME] == "cancelled"


def test_lock_cancelled_waiter_passes_the_lock_on(ck, run):
    """Two waiters; the first is cancelled right after the release woke it:
    asyncio hands the lock on to the second."""

    async def waiter(lock, log, name):
        try:
            async with lock:
                log.append(name)
        except asyncio.CancelledError:
            log.append(name + " cancelled")
            raise

    async def main():
        log = []
        lock = asyncio.Lock()
        await lock.acquire()
        a = asyncio.create_task(waiter(lock, log, "a"), name="a")
        b = asyncio.create_task(waiter(lock, log, "b"), name="b")
        await asyncio.sleep(0)
        ck.check("two waiters", lock)
        lock.release()
        a.cancel()
        ck.check("released and a cancelled", lock)
        await finish(a, b)
        ck.check("end", lock)
        return lock, log

    _, log = run(main)
    assert log == ["a cancelled", "b"]
    spans = ck.verify()
    op_a, op_b = ops(spans, "Lock.acquire")
    assert op_a.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"
    assert op_b.attributes[sc.ASYNC_OP_OUTCOME] == "ok"


@pytest.mark.parametrize("how", ["wait_for", pytest.param("timeout", marks=needs_timeout)])
def test_lock_acquire_timeout(ck, run, how):
    async def waiter(lock):
        try:
            if how == "wait_for":
                await asyncio.wait_for(lock.acquire(), 0.01)
            else:
                async with asyncio.timeout(0.01):
                    await lock.acquire()
        except asyncio.TimeoutError:
            return "timed out"

    async def main():
        lock = asyncio.Lock()
        await lock.acquire()
        w = asyncio.create_task(waiter(lock), name="waiter")
        await asyncio.sleep(0)
        ck.check("waiting", lock)
        assert await w == "timed out"
        ck.check("timed out", lock)
        lock.release()
        ck.check("released", lock)
        return lock

    run(main)
    spans = ck.verify()
    (op,) = ops(spans, "Lock.acquire")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"


def test_lock_exception_inside_hands_over_to_a_waiter(ck, run):
    async def failing(lock, started, go):
        async with lock:
            started.set()
            await go.wait()
            raise ValueError("inside")

    async def waiter(lock):
        async with lock:
            ck.check("waiter holds", lock)

    async def main():
        lock = asyncio.Lock()
        started, go = asyncio.Event(), asyncio.Event()
        f = asyncio.create_task(failing(lock, started, go), name="failing")
        await started.wait()
        w = asyncio.create_task(waiter(lock), name="waiter")
        await asyncio.sleep(0)
        ck.check("held, one waiter", lock)
        go.set()
        results = await finish(f, w)
        assert isinstance(results[0], ValueError)
        ck.check("end", lock)
        return lock

    lock = run(main)
    spans = ck.verify()
    (op,) = ops(spans, "Lock.acquire")
    check_op(
        spans,
        op,
        source="Lock.acquire",
        task=task_span(spans, "waiter"),
        resource=resource_span(spans, ck.rid(lock)),
        outcome="ok",
        waker=task_span(spans, "failing"),
    )


def test_lock_release_unlocked_raises_and_changes_nothing(ck, run):
    async def main():
        lock = asyncio.Lock()
        ck.check("unlocked", lock)
        with pytest.raises(RuntimeError):
            lock.release()
        ck.check("after failed release", lock)
        await lock.acquire()
        lock.release()
        with pytest.raises(RuntimeError):
            lock.release()
        ck.check("after second failed release", lock)
        return lock

    lock = run(main)
    assert real_state(lock) == {"locked": False, "waiters": 0}
    ck.verify()


# -- Semaphore, BoundedSemaphore ---------------------------------------------------------


def test_semaphore_contended_acquire_and_holders(ck, run):
    seen: dict[str, Any] = {}

    async def first(sem, gate):
        async with sem:
            await gate.wait()

    async def second(sem, gate):
        async with sem:
            seen["second holds"] = (ck.holders(sem), ck.task_id())
            await gate.wait()

    async def main():
        sem = asyncio.Semaphore(2)
        gate_a, gate_b = asyncio.Event(), asyncio.Event()
        ck.check("created", sem)
        await sem.acquire()
        main_id = ck.task_id()
        a = asyncio.create_task(first(sem, gate_a), name="first")
        await asyncio.sleep(0)
        assert sem.locked()
        ck.check("two held", sem)
        b = asyncio.create_task(second(sem, gate_b), name="second")
        await asyncio.sleep(0)
        ck.check("two held, one waiter", sem)
        seen["two held"] = (ck.holders(sem), main_id, ck.task_id(a))
        gate_a.set()
        await a
        # first's release handed its permit straight to second.
        seen["after hand-off"] = (ck.holders(sem), ck.task_id(b))
        ck.check("handed off", sem)
        await settle()
        ck.check("second running", sem)
        sem.release()
        seen["main released"] = ck.holders(sem)
        ck.check("main released", sem)
        gate_b.set()
        await b
        ck.check("end", sem)
        seen["end"] = ck.holders(sem)
        return sem

    sem = run(main)
    holders, main_id, a_id = seen["two held"]
    assert holders == [main_id, a_id]
    holders, b_id = seen["after hand-off"]
    assert sorted(holders) == sorted([main_id, b_id])
    holders, b_id2 = seen["second holds"]
    assert b_id2 == b_id and sorted(holders) == sorted([main_id, b_id])
    assert seen["main released"] == [b_id]
    assert seen["end"] == []
    assert real_state(sem) == {"permits": 2, "waiters": 0}
    spans = ck.verify()
    (op,) = ops(spans, "Semaphore.acquire")
    res = resource_span(spans, ck.rid(sem))
    assert res.name == "resource asyncio.Semaphore"
    check_op(
        spans,
        op,
        source="Semaphore.acquire",
        task=task_span(spans, "second"),
        resource=res,
        outcome="ok",
        waker=task_span(spans, "first"),
    )
    permits = [e.attributes for e in state_updates(res) if "permits" in e.attributes]
    assert all(p["permits.op"] in ("add", "sub") and p["permits"] > 0 for p in permits)


def test_semaphore_handoff_then_cancel_returns_the_permit(ck, run):
    seen = {}

    async def waiter(sem):
        async with sem:
            pass

    async def main():
        sem = asyncio.Semaphore(1)
        await sem.acquire()
        w = asyncio.create_task(waiter(sem), name="waiter")
        await asyncio.sleep(0)
        ck.check("one waiter", sem)
        sem.release()  # hands the permit to the waiter ...
        ck.check("handed off", sem)
        seen["handed"] = (ck.holders(sem), ck.task_id(w))
        w.cancel()  # ... which is cancelled before it runs
        await finish(w)
        ck.check("waiter cancelled", sem)
        seen["end"] = ck.holders(sem)
        return sem

    sem = run(main)
    holders, w_id = seen["handed"]
    assert holders == [w_id]
    assert seen["end"] == []
    assert real_state(sem) == {"permits": 1, "waiters": 0}
    spans = ck.verify()
    (op,) = ops(spans, "Semaphore.acquire")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"


@pytest.mark.parametrize("how", ["cancel", "wait_for", pytest.param("timeout", marks=needs_timeout)])
def test_semaphore_waiter_gives_up(ck, run, how):
    async def waiter(sem):
        if how == "cancel":
            await sem.acquire()
        elif how == "wait_for":
            await asyncio.wait_for(sem.acquire(), 0.01)
        else:
            async with asyncio.timeout(0.01):
                await sem.acquire()

    async def main():
        sem = asyncio.Semaphore(0)
        w = asyncio.create_task(waiter(sem), name="waiter")
        await asyncio.sleep(0)
        ck.check("waiting", sem)
        if how == "cancel":
            w.cancel()
        await finish(w)
        ck.check("gave up", sem)
        sem.release()
        ck.check("released without a waiter", sem)
        return sem

    sem = run(main)
    assert real_state(sem) == {"permits": 1, "waiters": 0}
    spans = ck.verify()
    (op,) = ops(spans, "Semaphore.acquire")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"


def test_semaphore_release_without_waiter_and_exception(ck, run):
    async def main():
        sem = asyncio.Semaphore(1)
        with pytest.raises(KeyError):
            async with sem:
                ck.check("held", sem)
                raise KeyError("x")
        ck.check("released by the exception", sem)
        sem.release()  # a plain Semaphore may go above its initial value
        sem.release()
        ck.check("over-released", sem)
        await sem.acquire()
        ck.check("acquired", sem)
        return sem

    sem = run(main)
    assert real_state(sem) == {"permits": 2, "waiters": 0}
    spans = ck.verify()
    assert ops(spans, "Semaphore.acquire") == []


def test_bounded_semaphore_over_release(ck, run):
    async def main():
        sem = asyncio.BoundedSemaphore(2)
        ck.check("created", sem)
        with pytest.raises(ValueError):
            sem.release()
        ck.check("over-released", sem)
        await sem.acquire()
        sem.release()
        with pytest.raises(ValueError):
            sem.release()
        ck.check("over-released again", sem)
        async with sem, sem:
            assert sem.locked()
            ck.check("all held", sem)
        return sem

    sem = run(main)
    assert real_state(sem) == {"permits": 2, "waiters": 0}
    spans = ck.verify()
    res = resource_span(spans, ck.rid(sem))
    assert res.name == "resource asyncio.BoundedSemaphore"
    assert res.attributes[sc.RESOURCE_CONCRETE_TYPE] == "asyncio.BoundedSemaphore"


def test_bounded_semaphore_contended(ck, run):
    async def waiter(sem):
        async with sem:
            await asyncio.sleep(0)

    async def main():
        sem = asyncio.BoundedSemaphore(1)
        await sem.acquire()
        ws = [asyncio.create_task(waiter(sem), name=f"w{i}") for i in range(2)]
        await asyncio.sleep(0)
        ck.check("two waiters", sem)
        sem.release()
        await finish(*ws)
        ck.check("end", sem)
        with pytest.raises(ValueError):
            sem.release()
        ck.check("over-released", sem)
        return sem

    run(main)
    spans = ck.verify()
    assert [op.attributes[sc.ASYNC_OP_OUTCOME] for op in ops(spans, "Semaphore.acquire")] == ["ok", "ok"]


# -- Event -------------------------------------------------------------------------------


def test_event_set_wakes_every_waiter(ck, run):
    async def waiter(event):
        await event.wait()

    async def main():
        event = asyncio.Event()
        ck.check("created", event)
        ws = [asyncio.create_task(waiter(event), name=f"w{i}") for i in range(3)]
        await asyncio.sleep(0)
        ck.check("three waiters", event)
        event.set()
        ck.check("set", event)
        await finish(*ws)
        ck.check("all woken", event)
        await event.wait()  # already set: no op
        event.clear()
        ck.check("cleared", event)
        return event

    event = run(main)
    assert real_state(event) == {"is_set": False, "waiters": 0}
    spans = ck.verify()
    res = resource_span(spans, ck.rid(event))
    m_span = main_span(spans)
    waits = ops(spans, "Event.wait")
    assert len(waits) == 3
    for i, op in enumerate(sorted(waits, key=lambda s: s.attributes[sc.TASK_ID])):
        check_op(
            spans,
            op,
            source="Event.wait",
            task=task_span(spans, f"w{i}"),
            resource=res,
            outcome="ok",
            waker=m_span,
        )


def test_event_set_clear_without_waiters(ck, run):
    async def main():
        event = asyncio.Event()
        event.set()
        event.set()
        ck.check("set twice", event)
        event.clear()
        event.clear()
        ck.check("cleared twice", event)
        event.set()
        await event.wait()
        return event

    event = run(main)
    spans = ck.verify()
    assert ops(spans, "Event.wait") == []
    updates = [e.attributes for e in state_updates(resource_span(spans, ck.rid(event)))]
    assert [u["is_set"] for u in updates if "is_set" in u] == [True, False, True]


@pytest.mark.parametrize("how", ["cancel", "wait_for", pytest.param("timeout", marks=needs_timeout)])
def test_event_waiter_gives_up(ck, run, how):
    async def waiter(event):
        if how == "cancel":
            await event.wait()
        elif how == "wait_for":
            await asyncio.wait_for(event.wait(), 0.01)
        else:
            async with asyncio.timeout(0.01):
                await event.wait()

    async def main():
        event = asyncio.Event()
        w = asyncio.create_task(waiter(event), name="waiter")
        await asyncio.sleep(0)
        ck.check("waiting", event)
        if how == "cancel":
            w.cancel()
        await finish(w)
        ck.check("gave up", event)
        event.set()
        ck.check("set", event)
        return event

    event = run(main)
    assert real_state(event) == {"is_set": True, "waiters": 0}
    spans = ck.verify()
    (op,) = ops(spans, "Event.wait")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"


def test_event_cleared_before_the_waiter_runs(ck, run):
    """set() then clear() at once: the waiter was still woken (asyncio's
    semantics) and its op completes ok."""

    async def waiter(event):
        await event.wait()
        return "woken"

    async def main():
        event = asyncio.Event()
        w = asyncio.create_task(waiter(event), name="waiter")
        await asyncio.sleep(0)
        event.set()
        event.clear()
        ck.check("set and cleared", event)
        assert await w == "woken"
        ck.check("end", event)
        return event

    run(main)
    spans = ck.verify()
    (op,) = ops(spans, "Event.wait")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "ok"


# -- Condition ---------------------------------------------------------------------------


def test_condition_notify_and_notify_all(ck, run):
    async def waiter(cond, log, name):
        async with cond:
            await cond.wait()
            log.append(name)

    async def main():
        log = []
        cond = asyncio.Condition()
        ck.check("created", cond, cond._lock)
        ws = [asyncio.create_task(waiter(cond, log, f"w{i}"), name=f"w{i}") for i in range(3)]
        await asyncio.sleep(0)
        ck.check("three waiting", cond, cond._lock)
        async with cond:
            cond.notify(1)
            ck.check("notified one", cond, cond._lock)
        await settle()
        ck.check("one done", cond, cond._lock)
        async with cond:
            cond.notify_all()
            ck.check("notified all", cond, cond._lock)
        await finish(*ws)
        ck.check("end", cond, cond._lock)
        return cond, log

    cond, log = run(main)
    assert log == ["w0", "w1", "w2"]
    spans = ck.verify()
    res = resource_span(spans, ck.rid(cond))
    assert res.name == "resource asyncio.Condition"
    waits = ops(spans, "Condition.wait")
    assert len(waits) == 3
    m_span = main_span(spans)
    for op in waits:
        (task,) = [
            s
            for s in by_name(spans, "task w0") + by_name(spans, "task w1") + by_name(spans, "task w2")
            if s.attributes[sc.TASK_ID] == op.attributes[sc.TASK_ID]
        ]
        check_op(
            spans,
            op,
            source="Condition.wait",
            task=task,
            resource=res,
            outcome="ok",
            waker=m_span,
        )
    # The re-acquire inside Condition.wait is part of the wait, not an op of its own.
    assert ops(spans, "Lock.acquire") == []


def test_condition_wait_is_one_op_across_notify_and_lock_reacquire(ck, run):
    """notify_all while main keeps the lock: each waiter is woken, then waits
    for the lock inside Condition.wait. Still one op per wait."""

    async def waiter(cond):
        async with cond:
            await cond.wait()
            await asyncio.sleep(0)  # keep the lock so the next waiter must wait for it

    async def main():
        cond = asyncio.Condition()
        ws = [asyncio.create_task(waiter(cond), name=f"w{i}") for i in range(2)]
        await asyncio.sleep(0)
        async with cond:
            cond.notify_all()
            await settle()  # both woken, both wait for the lock main holds
            ck.check("woken, waiting for the lock", cond, cond._lock)
        await finish(*ws)
        ck.check("end", cond, cond._lock)
        return cond

    run(main)
    spans = ck.verify()
    waits = ops(spans, "Condition.wait")
    assert len(waits) == 2
    assert ops(spans, "Lock.acquire") == []
    for op in waits:
        assert op.attributes[sc.ASYNC_OP_OUTCOME] == "ok"
        ready = poll_ops(op)
        # parked on the notify, parked on the lock, then done
        assert len(ready) >= 3 and ready[-1] is True and not any(ready[:-1]), ready
        assert op.attributes[sc.ASYNC_OP_POLLS] == len(ready)


def test_condition_wait_for_predicate(ck, run):
    async def waiter(cond, box):
        async with cond:
            await cond.wait_for(lambda: box["ready"])
            return box["ready"]

    async def main():
        box = {"ready": False}
        cond = asyncio.Condition()
        w = asyncio.create_task(waiter(cond, box), name="waiter")
        await asyncio.sleep(0)
        ck.check("waiting", cond, cond._lock)
        async with cond:
            cond.notify_all()  # predicate still false: waits again
        await settle()
        ck.check("still waiting", cond, cond._lock)
        async with cond:
            box["ready"] = True
            cond.notify()
        assert await w is True
        ck.check("end", cond, cond._lock)
        # A predicate already true: no wait at all.
        async with cond:
            assert await cond.wait_for(lambda: True)
        return cond

    cond = run(main)
    spans = ck.verify()
    (op,) = ops(spans, "Condition.wait_for")
    assert ops(spans, "Condition.wait") == []
    check_op(
        spans,
        op,
        source="Condition.wait_for",
        task=task_span(spans, "waiter"),
        resource=resource_span(spans, ck.rid(cond)),
        outcome="ok",
        waker=main_span(spans),
    )
    assert op.attributes[sc.ASYNC_OP_POLLS] >= 3


@pytest.mark.parametrize("how", ["cancel", "wait_for"])
def test_condition_wait_cancelled_reacquires_the_lock(ck, run, how):
    """A cancelled Condition.wait still re-acquires the lock before raising;
    main holds it meanwhile, so the waiter parks a second time inside the same
    wait. One op, cancelled."""

    async def waiter(cond):
        async with cond:
            if how == "cancel":
                await cond.wait()
            else:
                await asyncio.wait_for(cond.wait(), 0.01)

    async def main():
        cond = asyncio.Condition()
        w = asyncio.create_task(waiter(cond), name="waiter")
        await asyncio.sleep(0)
        ck.check("waiting", cond, cond._lock)
        async with cond:
            if how == "cancel":
                w.cancel()
                await settle()
            else:
                await asyncio.sleep(0.05)
            ck.check("cancelled, waiting for the lock", cond, cond._lock)
        results = await finish(w)
        assert isinstance(results[0], (asyncio.CancelledError, asyncio.TimeoutError))
        ck.check("end", cond, cond._lock)
        return cond

    cond = run(main)
    assert real_state(cond) == {"waiters": 0}
    spans = ck.verify()
    waits = ops(spans, "Condition.wait")
    assert [op.attributes[sc.ASYNC_OP_OUTCOME] for op in waits] == ["cancelled"]


def test_condition_with_a_user_lock(ck, run):
    async def waiter(cond):
        async with cond:
            await cond.wait()

    async def main():
        lock = asyncio.Lock()
        cond = asyncio.Condition(lock)
        w = asyncio.create_task(waiter(cond), name="waiter")
        await asyncio.sleep(0)
        ck.check("waiting", cond, lock)
        async with lock:
            cond.notify()
            ck.check("notified", cond, lock)
        await w
        ck.check("end", cond, lock)
        return cond, lock

    _, lock = run(main)
    spans = ck.verify()
    # The user's lock is the user's resource: not internal, it has a span.
    assert resource_span(spans, ck.rid(lock)).attributes[sc.RESOURCE_IS_INTERNAL] is False


def test_condition_notify_without_lock_raises_and_changes_nothing(ck, run):
    async def main():
        cond = asyncio.Condition()
        with pytest.raises(RuntimeError):
            cond.notify()
        with pytest.raises(RuntimeError):
            await cond.wait()
        ck.check("after errors", cond, cond._lock)
        return cond

    run(main)
    ck.verify()


def test_condition_exception_inside_releases_its_lock_to_a_notified_waiter(ck, run):
    async def waiter(cond, log):
        async with cond:
            await cond.wait()
            log.append("woken")

    async def failing(cond):
        async with cond:
            cond.notify()
            ck.check("notified, lock held", cond, cond._lock)
            raise KeyError("inside")

    async def main():
        log = []
        cond = asyncio.Condition()
        w = asyncio.create_task(waiter(cond, log), name="waiter")
        await asyncio.sleep(0)
        ck.check("waiting", cond, cond._lock)
        results = await finish(asyncio.create_task(failing(cond), name="failing"), w)
        assert isinstance(results[0], KeyError) and log == ["woken"]
        ck.check("end", cond, cond._lock)
        return cond

    cond = run(main)
    assert real_state(cond._lock) == {"locked": False, "waiters": 0}
    spans = ck.verify()
    (op,) = ops(spans, "Condition.wait")
    check_op(
        spans,
        op,
        source="Condition.wait",
        task=task_span(spans, "waiter"),
        resource=resource_span(spans, ck.rid(cond)),
        outcome="ok",
        waker=task_span(spans, "failing"),
    )


# -- Barrier (3.11+) ---------------------------------------------------------------------


@needs_barrier
def test_barrier_round(ck, run):
    async def party(barrier):
        return await barrier.wait()

    async def main():
        barrier = asyncio.Barrier(3)
        ck.check("created", barrier)
        ps = [asyncio.create_task(party(barrier), name=f"p{i}") for i in range(2)]
        await asyncio.sleep(0)
        ck.check("two arrived", barrier)
        index = await barrier.wait()
        ck.check("passed", barrier)
        indices = sorted([index, *await asyncio.gather(*ps)])
        assert indices == [0, 1, 2]
        ck.check("end", barrier)
        # A second round.
        ps = [asyncio.create_task(party(barrier), name=f"q{i}") for i in range(2)]
        await asyncio.sleep(0)
        ck.check("round two, two arrived", barrier)
        await barrier.wait()
        await finish(*ps)
        ck.check("round two done", barrier)
        return barrier

    barrier = run(main)
    assert real_state(barrier) == {"parties": 3, "arrived": 0, "broken": False}
    spans = ck.verify()
    res = resource_span(spans, ck.rid(barrier))
    assert res.name == "resource asyncio.Barrier"
    waits = ops(spans, "Barrier.wait")
    assert len(waits) >= 4  # the two waiting parties of each round (main may or may not wait)
    for op in waits:
        assert op.attributes[sc.ASYNC_OP_OUTCOME] == "ok"
        assert links(op)["resource"] == res.context.span_id


@needs_barrier
@pytest.mark.parametrize("how", ["abort", "reset"])
def test_barrier_abort_and_reset_break_the_waiters(ck, run, how):
    async def party(barrier):
        await barrier.wait()

    async def main():
        barrier = asyncio.Barrier(3)
        ps = [asyncio.create_task(party(barrier), name=f"p{i}") for i in range(2)]
        await asyncio.sleep(0)
        ck.check("two arrived", barrier)
        if how == "abort":
            await barrier.abort()
        else:
            await barrier.reset()
        ck.check(how, barrier)
        results = await finish(*ps)
        assert all(isinstance(x, asyncio.BrokenBarrierError) for x in results), results
        ck.check("waiters raised", barrier)
        if how == "abort":
            assert barrier.broken
            with pytest.raises(asyncio.BrokenBarrierError):
                await barrier.wait()
            ck.check("wait on a broken barrier", barrier)
            await barrier.reset()
            ck.check("reset after abort", barrier)
        return barrier

    barrier = run(main)
    assert real_state(barrier) == {"parties": 3, "arrived": 0, "broken": False}
    spans = ck.verify()
    waits = ops(spans, "Barrier.wait")
    assert len(waits) == 2
    assert {op.attributes[sc.ASYNC_OP_OUTCOME] for op in waits} == {"error"}
    res = resource_span(spans, ck.rid(barrier))
    if how == "abort":
        broken = [e.attributes["broken"] for e in state_updates(res) if "broken" in e.attributes]
        assert broken == [True, False]


@needs_barrier
def test_barrier_waiter_cancelled(ck, run):
    async def party(barrier):
        await barrier.wait()

    async def main():
        barrier = asyncio.Barrier(2)
        p = asyncio.create_task(party(barrier), name="party")
        await asyncio.sleep(0)
        ck.check("one arrived", barrier)
        p.cancel()
        await finish(p)
        ck.check("cancelled", barrier)
        return barrier

    barrier = run(main)
    assert real_state(barrier) == {"parties": 2, "arrived": 0, "broken": False}
    spans = ck.verify()
    (op,) = ops(spans, "Barrier.wait")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"


# -- Queues ------------------------------------------------------------------------------


def test_queue_nowait_variants_and_their_errors(ck, run):
    async def main():
        q = asyncio.Queue(maxsize=2)
        ck.check("created", q, q._finished)
        q.put_nowait("a")
        q.put_nowait("b")
        ck.check("full", q, q._finished)
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait("c")
        ck.check("after QueueFull", q)
        assert q.get_nowait() == "a"
        assert q.get_nowait() == "b"
        ck.check("empty", q)
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()
        ck.check("after QueueEmpty", q)
        q.task_done()
        ck.check("one done", q, q._finished)
        q.task_done()
        ck.check("all done", q, q._finished)
        with pytest.raises(ValueError):
            q.task_done()
        ck.check("after too many task_done", q, q._finished)
        await q.join()  # nothing unfinished: returns at once, no op
        await q.put("d")  # not full: no wait
        assert await q.get() == "d"  # not empty: no wait
        ck.check("end", q, q._finished)
        return q

    q = run(main)
    assert real_state(q)["size"] == 0 and real_state(q)["unfinished_tasks"] == 1
    spans = ck.verify()
    assert not [s for s in spans if s.name.startswith("async_op ")]
    res = resource_span(spans, ck.rid(q))
    assert res.name == "resource asyncio.Queue"
    assert res.attributes[sc.RESOURCE_KIND] == "Channel"
    sizes = [
        (e.attributes["size"], e.attributes["size.op"]) for e in state_updates(res) if "size" in e.attributes
    ]
    assert sizes[:4] == [(1, "add"), (1, "add"), (1, "sub"), (1, "sub")]


def test_queue_get_waits_for_a_put(ck, run):
    async def getter(q):
        return await q.get()

    async def main():
        q = asyncio.Queue()
        g = asyncio.create_task(getter(q), name="getter")
        await asyncio.sleep(0)
        ck.check("one getter", q)
        q.put_nowait(7)
        ck.check("put", q)
        assert await g == 7
        ck.check("got", q)
        return q

    q = run(main)
    spans = ck.verify()
    (op,) = ops(spans, "Queue.get")
    check_op(
        spans,
        op,
        source="Queue.get",
        task=task_span(spans, "getter"),
        resource=resource_span(spans, ck.rid(q)),
        outcome="ok",
        waker=main_span(spans),
    )
    assert poll_ops(op) == [False, True]


def test_queue_put_waits_for_a_get(ck, run):
    async def putter(q):
        await q.put("second")

    async def main():
        q = asyncio.Queue(maxsize=1)
        await q.put("first")
        p = asyncio.create_task(putter(q), name="putter")
        await asyncio.sleep(0)
        ck.check("one putter", q)
        assert q.get_nowait() == "first"
        ck.check("got", q)
        await p
        ck.check("put done", q)
        assert await q.get() == "second"
        ck.check("end", q)
        return q

    q = run(main)
    assert real_state(q)["unfinished_tasks"] == 2
    spans = ck.verify()
    (op,) = ops(spans, "Queue.put")
    check_op(
        spans,
        op,
        source="Queue.put",
        task=task_span(spans, "putter"),
        resource=resource_span(spans, ck.rid(q)),
        outcome="ok",
        waker=main_span(spans),
    )


@pytest.mark.parametrize("side", ["get", "put"])
@pytest.mark.parametrize("how", ["cancel", "wait_for", pytest.param("timeout", marks=needs_timeout)])
def test_queue_waiter_gives_up(ck, run, side, how):
    async def waiter(q):
        op = q.get() if side == "get" else q.put("x")
        if how == "cancel":
            await op
        elif how == "wait_for":
            await asyncio.wait_for(op, 0.01)
        else:
            async with asyncio.timeout(0.01):
                await op

    async def main():
        q = asyncio.Queue(maxsize=1)
        if side == "put":
            q.put_nowait("full")
        w = asyncio.create_task(waiter(q), name="waiter")
        await asyncio.sleep(0)
        ck.check("waiting", q)
        if how == "cancel":
            w.cancel()
        await finish(w)
        ck.check("gave up", q)
        return q

    q = run(main)
    assert real_state(q)["getters"] == real_state(q)["putters"] == 0
    spans = ck.verify()
    (op,) = ops(spans, f"Queue.{side}")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"


def test_queue_getter_woken_then_cancelled_passes_the_item_on(ck, run):
    async def getter(q):
        return await q.get()

    async def main():
        q = asyncio.Queue()
        a = asyncio.create_task(getter(q), name="a")
        b = asyncio.create_task(getter(q), name="b")
        await asyncio.sleep(0)
        ck.check("two getters", q)
        q.put_nowait("item")  # wakes a ...
        a.cancel()  # ... which is cancelled before it runs: b gets the item
        ck.check("put, a cancelled", q)
        results = await finish(a, b)
        assert isinstance(results[0], asyncio.CancelledError) and results[1] == "item"
        ck.check("end", q)
        return q

    run(main)
    spans = ck.verify()
    assert sorted(op.attributes[sc.ASYNC_OP_OUTCOME] for op in ops(spans, "Queue.get")) == ["cancelled", "ok"]


def test_queue_getter_that_loses_the_item_stays_one_op(ck, run):
    """The getter is woken by a put, but main takes the item before it runs:
    it parks again inside the same Queue.get. One op, three polls."""

    async def getter(q):
        return await q.get()

    async def main():
        q = asyncio.Queue()
        g = asyncio.create_task(getter(q), name="getter")
        await asyncio.sleep(0)
        q.put_nowait("stolen")
        assert q.get_nowait() == "stolen"
        ck.check("woken, item gone", q)
        await settle()
        ck.check("parked again", q)
        q.put_nowait("kept")
        assert await g == "kept"
        ck.check("end", q)
        return q

    q = run(main)
    spans = ck.verify()
    (op,) = ops(spans, "Queue.get")
    check_op(
        spans,
        op,
        source="Queue.get",
        task=task_span(spans, "getter"),
        resource=resource_span(spans, ck.rid(q)),
        outcome="ok",
        waker=main_span(spans),
    )
    assert op.attributes[sc.ASYNC_OP_POLLS] >= 3
    assert poll_ops(op) == [False, False, True]


def test_queue_task_done_and_join(ck, run):
    async def worker(q, log):
        while True:
            item = await q.get()
            log.append(item)
            ck.check(f"got {item}", q, q._finished)
            q.task_done()

    async def joiner(q):
        await q.join()
        return "joined"

    async def main():
        log = []
        q = asyncio.Queue()
        for i in range(3):
            q.put_nowait(i)
        j = asyncio.create_task(joiner(q), name="joiner")
        await asyncio.sleep(0)
        ck.check("joiner waiting", q, q._finished)
        w = asyncio.create_task(worker(q, log), name="worker")
        assert await j == "joined"
        ck.check("joined", q, q._finished)
        w.cancel()
        await finish(w)
        ck.check("worker cancelled", q, q._finished)
        return q, log

    q, log = run(main)
    assert log == [0, 1, 2]
    spans = ck.verify()
    (op,) = ops(spans, "Queue.join")
    check_op(
        spans,
        op,
        source="Queue.join",
        task=task_span(spans, "joiner"),
        resource=resource_span(spans, ck.rid(q)),
        outcome="ok",
        waker=task_span(spans, "worker"),
    )
    assert ops(spans, "Event.wait") == []  # the queue's own Event is internal
    (get,) = ops(spans, "Queue.get")  # the worker's last get, cancelled
    assert get.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"


@needs_shutdown
@pytest.mark.parametrize("immediate", [False, True])
def test_queue_shutdown(ck, run, immediate):
    async def getter(q):
        return await q.get()

    async def putter(q):
        await q.put("late")

    async def joiner(q):
        await q.join()
        return "joined"

    async def main():
        empty = asyncio.Queue()
        full = asyncio.Queue(maxsize=1)
        full.put_nowait("kept")
        g = asyncio.create_task(getter(empty), name="getter")
        p = asyncio.create_task(putter(full), name="putter")
        j = asyncio.create_task(joiner(full), name="joiner")
        await asyncio.sleep(0)
        ck.check("waiting", empty, full, full._finished)
        empty.shutdown(immediate)
        full.shutdown(immediate)
        ck.check("shut down", empty, full, full._finished)
        results = await finish(g, p)
        assert all(isinstance(x, asyncio.QueueShutDown) for x in results), results
        ck.check("waiters raised", empty, full, full._finished)
        with pytest.raises(asyncio.QueueShutDown):
            full.put_nowait("refused")
        if immediate:
            assert await j == "joined"
        else:
            assert full.get_nowait() == "kept"
            full.task_done()
            assert await j == "joined"
        ck.check("end", empty, full, full._finished)
        return empty, full

    _, full = run(main)
    assert real_state(full)["shutdown"] is True
    spans = ck.verify()
    for source in ("Queue.get", "Queue.put"):
        (op,) = ops(spans, source)
        assert op.attributes[sc.ASYNC_OP_OUTCOME] == "error"
    (op,) = ops(spans, "Queue.join")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "ok"


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        # holds 1, 2; the waiting put adds 3
        (asyncio.PriorityQueue, [1, 2, 3]),
        # holds 1, 2 (2 on top); the waiting put adds 3 on top
        (asyncio.LifoQueue, [2, 3, 1]),
    ],
)
def test_priority_and_lifo_queues(ck, run, cls, expected):
    async def getter(q):
        return await q.get()

    async def putter(q, item):
        await q.put(item)

    async def main():
        q = cls(maxsize=2)
        ck.check("created", q)
        g = asyncio.create_task(getter(q), name="getter")
        await asyncio.sleep(0)
        ck.check("one getter", q)
        q.put_nowait(0)
        assert await g == 0
        q.put_nowait(1)
        q.put_nowait(2)
        ck.check("full", q)
        p = asyncio.create_task(putter(q, 3), name="putter")
        await asyncio.sleep(0)
        ck.check("one putter", q)
        got = [q.get_nowait()]
        await p
        ck.check("put done", q)
        got += [q.get_nowait(), q.get_nowait()]
        ck.check("drained", q)
        return q, got

    q, got = run(main)
    assert got == expected
    spans = ck.verify()
    res = resource_span(spans, ck.rid(q))
    name = f"asyncio.{cls.__name__}"
    assert res.name == f"resource {name}"
    assert res.attributes[sc.RESOURCE_CONCRETE_TYPE] == name
    assert [op.attributes[sc.ASYNC_OP_OUTCOME] for op in ops(spans, "Queue.get")] == ["ok"]
    assert [op.attributes[sc.ASYNC_OP_OUTCOME] for op in ops(spans, "Queue.put")] == ["ok"]


# -- sleep -------------------------------------------------------------------------------


def test_sleep_is_a_timer_resource_folded_into_its_op(ck, run):
    """A sleep's timer is used by its one op: no span of its own, the op span
    carries the resource's identity and state."""

    async def sleeper():
        await asyncio.sleep(0.01)
        return "slept"

    async def main():
        assert await asyncio.create_task(sleeper(), name="sleeper") == "slept"
        await asyncio.sleep(0)  # a yield, not a timer

    run(main)
    spans = ck.verify()
    assert by_name(spans, "resource asyncio.sleep") == []
    (op,) = ops(spans, "sleep")
    assert op.attributes[sc.RESOURCE_KIND] == "Timer"
    assert op.attributes[sc.RESOURCE_CONCRETE_TYPE] == "asyncio.sleep"
    assert op.attributes[sc.RESOURCE_STATE_PREFIX + "duration"] == pytest.approx(10.0)
    assert op.attributes[sc.RESOURCE_STATE_PREFIX + "duration.unit"] == "ms"
    assert sc.UNFINISHED not in op.attributes
    assert op.attributes[sc.CODE_FUNCTION_NAME].endswith("sleeper")
    check_op(spans, op, source="sleep", task=task_span(spans, "sleeper"), resource=None, outcome="ok")
    assert "resource" not in links(op)
    # The timer ends with its op: nothing of it is left once the sleep is over.
    assert ck.registry.live() == []


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
def test_a_timeout_is_one_span_with_its_budget_in_ms(ck, run):
    """``asyncio.timeout`` is one span, its ``timeout`` op, folded with its
    Timeout as a sleep is with its timer (issue 13 item 4): it carries the
    budget it allowed in ms (the delay given, not the epoch deadline alone),
    whether it expired, and a ``reschedule()`` inside it as an op state
    update of the budget."""

    async def main():
        async with asyncio.timeout(0.25):
            await asyncio.sleep(0)
        try:
            async with asyncio.timeout(0.005):
                await asyncio.sleep(1)
        except TimeoutError:
            pass
        async with asyncio.timeout(None) as cm:
            cm.reschedule(asyncio.get_running_loop().time() + 0.5)
            await asyncio.sleep(0)

    run(main)
    spans = ck.verify()
    assert by_name(spans, "resource asyncio.Timeout") == []
    guards = ops(spans, "timeout")
    state = sc.RESOURCE_STATE_PREFIX
    assert [op.attributes[state + "budget"] for op in guards[:2]] == [250.0, 5.0]
    assert all(op.attributes[state + "budget.unit"] == "ms" for op in guards)
    assert [op.attributes[state + "expired"] for op in guards] == [False, True, False]
    assert [op.attributes[sc.ASYNC_OP_OUTCOME] for op in guards] == ["ok", "timed_out", "ok"]
    assert all(op.attributes[sc.RESOURCE_CONCRETE_TYPE] == "asyncio.Timeout" for op in guards)
    (update,) = events(guards[2], "state_update")
    assert update.attributes["budget.op"] == "override"
    assert 0 < update.attributes["budget"] <= 500.0
    assert guards[2].attributes[sc.ASYNC_OP_STATE_PREFIX + "budget"] == update.attributes["budget"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
def test_a_long_timeout_is_still_one_span(traced):
    """Alive past the second after which live entities are shown while they
    live, a timeout is still only its op (the sweeper shows no resource that
    folds into its op)."""

    async def main():
        async with asyncio.timeout(5):
            for _ in range(6):  # swept (every 250 ms) after the second
                await asyncio.sleep(0.3)

    asyncio.run(main())
    spans = traced.spans()
    assert by_name(spans, "resource asyncio.Timeout") == []
    assert len(by_name(spans, "async_op timeout")) == 1


def test_sleep_cancelled(ck, run):
    async def sleeper():
        await asyncio.sleep(10)

    async def main():
        s = asyncio.create_task(sleeper(), name="sleeper")
        await asyncio.sleep(0)
        s.cancel()
        await finish(s)

    run(main)
    spans = ck.verify()
    (op,) = ops(spans, "sleep")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"
    assert sc.UNFINISHED not in op.attributes
    assert op.attributes[sc.RESOURCE_STATE_PREFIX + "duration"] == pytest.approx(10000.0)


# -- user subclasses ---------------------------------------------------------------------


class MyLock(asyncio.Lock):
    def __init__(self):
        super().__init__()
        self.acquisitions = 0

    async def acquire(self):
        result = await super().acquire()
        self.acquisitions += 1
        return result


class MySemaphore(asyncio.Semaphore):
    pass


class MyBoundedSemaphore(asyncio.BoundedSemaphore):
    def release(self):
        super().release()


class MyEvent(asyncio.Event):
    def set(self):
        self.touched = True
        super().set()


class MyCondition(asyncio.Condition):
    pass


class MyQueue(asyncio.Queue):
    """Overrides the storage hooks, as the docs invite subclasses to do."""

    def _init(self, maxsize):
        self._queue = collections.deque()
        self.log = []

    def _put(self, item):
        self.log.append(item)
        self._queue.append(item)

    def _get(self):
        return self._queue.popleft()


class MyPriorityQueue(asyncio.PriorityQueue):
    pass


class MyLifoQueue(asyncio.LifoQueue):
    pass


def _exercise_lock(lock):
    async def holder():
        async with lock:
            await asyncio.sleep(0)

    return holder


SUBCLASSES = [
    (MyLock, "asyncio.Lock", "Lock.acquire"),
    (MySemaphore, "asyncio.Semaphore", "Semaphore.acquire"),
    (MyBoundedSemaphore, "asyncio.BoundedSemaphore", "Semaphore.acquire"),
    (MyEvent, "asyncio.Event", "Event.wait"),
    (MyCondition, "asyncio.Condition", "Condition.wait"),
    (MyQueue, "asyncio.Queue", "Queue.get"),
    (MyPriorityQueue, "asyncio.PriorityQueue", "Queue.get"),
    (MyLifoQueue, "asyncio.LifoQueue", "Queue.get"),
]
if PY311:

    class MyBarrier(asyncio.Barrier):
        pass

    SUBCLASSES.append((MyBarrier, "asyncio.Barrier", "Barrier.wait"))


def _make(cls):
    if issubclass(cls, asyncio.Semaphore):
        return cls(1)
    if PY311 and issubclass(cls, asyncio.Barrier):
        return cls(2)
    return cls()


async def _use(obj, ck):
    """Make one task wait on ``obj``, then release it, with checkpoints."""

    async def waiter():
        if isinstance(obj, asyncio.Queue):
            return await obj.get()
        if isinstance(obj, asyncio.Condition):
            async with obj:
                return await obj.wait()
        if isinstance(obj, asyncio.Event):
            return await obj.wait()
        if PY311 and isinstance(obj, asyncio.Barrier):
            return await obj.wait()
        async with obj:
            return "held"

    if isinstance(obj, (asyncio.Lock, asyncio.Semaphore)):
        await obj.acquire()
    w = asyncio.create_task(waiter(), name="waiter")
    await asyncio.sleep(0)
    ck.check("waiting", obj)
    if isinstance(obj, asyncio.Queue):
        obj.put_nowait(1)
    elif isinstance(obj, asyncio.Condition):
        async with obj:
            obj.notify()
    elif isinstance(obj, asyncio.Event):
        obj.set()
    elif PY311 and isinstance(obj, asyncio.Barrier):
        await obj.wait()
    else:
        obj.release()
    ck.check("released", obj)
    await w
    ck.check("end", obj)


@pytest.mark.parametrize(("cls", "concrete", "source"), SUBCLASSES, ids=[c[0].__name__ for c in SUBCLASSES])
def test_user_subclass_is_tracked_as_its_asyncio_type(ck, run, cls, concrete, source):
    async def main():
        obj = _make(cls)  # this line is where it was made
        ck.check("created", obj)
        await _use(obj, ck)
        return obj

    obj = run(main)
    assert type(obj) is cls
    spans = ck.verify()
    res = resource_span(spans, ck.rid(obj))
    assert res.name == f"resource {concrete}"
    assert res.attributes[sc.RESOURCE_CONCRETE_TYPE] == concrete
    assert res.attributes[sc.RESOURCE_IS_INTERNAL] is False
    assert res.attributes[sc.CODE_FILE_PATH] == THIS_FILE
    assert res.attributes[sc.CODE_FUNCTION_NAME] == "_make"
    (op,) = ops(spans, source)
    check_op(spans, op, source=source, task=task_span(spans, "waiter"), resource=res, outcome="ok")
    if cls is MyQueue:
        assert obj.log == [1]
    if cls is MyLock:
        assert obj.acquisitions == 2


# -- created before instrument() ---------------------------------------------------------


@pytest.fixture
def late(loop_kind):
    """Objects made and used plainly, then a session started afterwards."""
    assert current_session() is None, "a previous test left asyncio instrumented"
    handle: dict[str, Any] = {"kind": loop_kind}

    def start() -> Checker:
        handle["traced"] = make_traced()
        return Checker(handle["traced"])

    handle["start"] = start
    try:
        yield handle
    finally:
        otel_asyncres.uninstrument()


def test_lock_created_and_locked_before_instrument_first_released(late):
    lock = asyncio.Lock()

    async def pre():
        await lock.acquire()

    run_with(late["kind"], pre)
    assert lock.locked()
    ck = late["start"]()

    async def main():
        lock.release()  # first use: adopted here
        ck.check("released", lock)
        async with lock:
            ck.check("held", lock)
        ck.check("end", lock)

    run_with(late["kind"], main)
    rec = ck.resource(lock)
    assert rec.adopted is True
    spans = ck.verify()
    res = resource_span(spans, ck.rid(lock))
    assert res.attributes[sc.RESOURCE_ADOPTED] is True
    # Adopted resources say where they were first used (docs/mapping.md).
    assert res.attributes.get(sc.CODE_FILE_PATH) == THIS_FILE
    assert res.attributes.get(sc.CODE_FUNCTION_NAME, "").endswith("main")


def test_lock_created_and_locked_before_instrument_first_contended(late):
    lock = asyncio.Lock()

    async def pre():
        await lock.acquire()

    run_with(late["kind"], pre)
    ck = late["start"]()

    async def waiter():
        async with lock:
            ck.check("waiter holds", lock)

    async def main():
        w = asyncio.create_task(waiter(), name="waiter")
        await asyncio.sleep(0)  # adopted when the waiter parks on it
        ck.check("adopted, one waiter", lock)
        lock.release()
        ck.check("released", lock)
        await w
        ck.check("end", lock)

    run_with(late["kind"], main)
    rec = ck.resource(lock)
    assert rec.adopted is True
    assert dict(rec.initial) == {"locked": True, "waiters": 1}
    spans = ck.verify()
    res = resource_span(spans, ck.rid(lock))
    (op,) = ops(spans, "Lock.acquire")
    check_op(spans, op, source="Lock.acquire", task=task_span(spans, "waiter"), resource=res, outcome="ok")
    assert res.attributes.get(sc.CODE_FILE_PATH) == THIS_FILE
    assert res.attributes.get(sc.CODE_FUNCTION_NAME, "").endswith("waiter")


@pytest.mark.parametrize("kind", ["semaphore", "event", "queue", "condition"])
def test_primitives_created_before_instrument_are_adopted_at_first_use(late, kind):
    sem = asyncio.Semaphore(2)
    event = asyncio.Event()
    q = asyncio.Queue()
    cond = asyncio.Condition()

    async def pre():
        await sem.acquire()
        event.set()
        q.put_nowait("early")
        q.put_nowait("early 2")

    run_with(late["kind"], pre)
    ck = late["start"]()

    async def cond_waiter():
        async with cond:
            await cond.wait()

    async def main():
        if kind == "semaphore":
            sem.release()
            ck.check("released", sem)
            async with sem:
                ck.check("held", sem)
            obj = sem
        elif kind == "event":
            event.clear()
            ck.check("cleared", event)
            w = asyncio.create_task(event.wait())
            await asyncio.sleep(0)
            event.set()
            await w
            obj = event
        elif kind == "queue":
            assert q.get_nowait() == "early"
            ck.check("got", q)
            q.task_done()
            assert await q.get() == "early 2"
            ck.check("got again", q)
            obj = q
        else:
            w = asyncio.create_task(cond_waiter())
            await asyncio.sleep(0)
            async with cond:
                cond.notify_all()
            await w
            obj = cond
        ck.check("end", obj)
        return obj

    obj = run_with(late["kind"], main)
    assert ck.resource(obj).adopted is True
    ck.verify()


def test_condition_created_before_instrument_keeps_its_lock_internal(late):
    """Adopted at first use, a Condition's own Lock is still a helper asyncio
    made for it: internal, a child of the Condition, without a span."""
    cond = asyncio.Condition()
    ck = late["start"]()

    async def waiter():
        async with cond:
            await cond.wait()

    async def main():
        w = asyncio.create_task(waiter(), name="waiter")
        await asyncio.sleep(0)
        ck.check("waiting", cond, cond._lock)
        async with cond:
            cond.notify()
        await w
        ck.check("end", cond, cond._lock)

    run_with(late["kind"], main)
    rec, lock_rec = ck.resource(cond), ck.resource(cond._lock)
    assert rec.adopted and not rec.internal
    assert (lock_rec.internal, lock_rec.parent) == (True, rec), lock_rec
    spans = ck.verify()
    assert by_name(spans, "resource asyncio.Lock") == []


# -- who made it: user code, asyncio, this package ---------------------------------------


def _made_by_user(kind):
    """A primitive made on this line, and the helpers asyncio made for it."""
    if kind == "Queue":
        q = asyncio.Queue()
        return q, [q._finished]
    if kind == "Condition":
        cond = asyncio.Condition()
        return cond, [cond._lock]
    barrier = asyncio.Barrier(2)
    return barrier, [barrier._cond, barrier._cond._lock]


@pytest.mark.parametrize("kind", ["Queue", "Condition", pytest.param("Barrier", marks=needs_barrier)])
def test_user_primitive_and_its_internal_helpers(ck, run, kind):
    """The primitive is the user's: made here, not adopted, not internal, with
    a span. The helpers asyncio made for it are internal, children of it (or of
    each other), without spans."""

    async def main():
        obj, helpers = _made_by_user(kind)
        ck.check("created", obj, *helpers)
        return obj, helpers

    obj, helpers = run(main)
    rec = ck.resource(obj)
    assert (rec.internal, rec.adopted, rec.parent) == (False, False, None)
    assert rec.location is not None
    assert (rec.location.file, rec.location.function) == (THIS_FILE, "_made_by_user")
    parent = rec
    for helper in helpers:
        hrec = ck.resource(helper)
        assert (hrec.internal, hrec.adopted, hrec.parent) == (True, False, parent), hrec
        parent = hrec
    spans = ck.verify()
    assert [s.name for s in spans if s.name.startswith("resource ")] == [f"resource asyncio.{kind}"]
    res = resource_span(spans, ck.rid(obj))
    assert res.attributes[sc.CODE_FUNCTION_NAME] == "_made_by_user"
    assert sc.RESOURCE_ADOPTED not in res.attributes


def test_queue_made_by_asyncio_is_internal(ck, run):
    """as_completed makes a Queue for itself: a helper the user did not
    create, internal, no span."""

    async def job(i):
        await asyncio.sleep(0)
        return i

    async def main():
        got = []
        it = asyncio.as_completed([job(i) for i in range(3)])
        for fut in it:
            # 3.13: an iterator holding the queue; before: a generator's local.
            done = it._done if PY313 else it.gi_frame.f_locals["done"]
            got.append(await fut)
        ck.check("drained", done)
        return sorted(got), done

    got, done = run(main)
    assert got == [0, 1, 2]
    rec = ck.resource(done)
    assert rec.internal is True
    assert rec.location is None or not rec.location.file.startswith((ASYNCIO_DIR, PACKAGE_DIR))
    spans = ck.verify()
    assert by_name(spans, "resource asyncio.Queue") == []


def test_primitive_made_in_a_helper_function_points_at_the_helper(ck, run):
    def make_lock():
        return asyncio.Lock()

    async def main():
        lock = make_lock()
        async with lock:
            pass
        return lock

    lock = run(main)
    spans = ck.verify()
    res = resource_span(spans, ck.rid(lock))
    assert res.attributes[sc.CODE_FUNCTION_NAME].endswith("make_lock")
    assert res.attributes[sc.CODE_FILE_PATH] == THIS_FILE


PRIMITIVE_FACTORIES = {
    "Lock": asyncio.Lock,
    "Semaphore": lambda: asyncio.Semaphore(3),
    "BoundedSemaphore": lambda: asyncio.BoundedSemaphore(3),
    "Event": asyncio.Event,
    "Condition": asyncio.Condition,
    "Queue": lambda: asyncio.Queue(5),
    "PriorityQueue": asyncio.PriorityQueue,
    "LifoQueue": asyncio.LifoQueue,
}
if PY311:
    PRIMITIVE_FACTORIES["Barrier"] = lambda: asyncio.Barrier(4)


@pytest.mark.parametrize("name", list(PRIMITIVE_FACTORIES))
def test_initial_state_is_complete(ck, name):
    """The creation record carries every state attribute (the span's initial
    state), with the values the new object really has."""

    async def main():
        obj = PRIMITIVE_FACTORIES[name]()
        ck.check("created", obj)
        return obj

    obj = run_with("asyncio", main)
    rec = ck.resource(obj)
    assert dict(rec.initial) == real_state(obj)
    spans = ck.verify()
    (span,) = [s for s in spans if s.name.startswith("resource ")]
    opening, *updates = [e for e in span.events if e.name == "state_update"]
    assert {k: v for k, v in opening.attributes.items() if "." not in k} == real_state(obj)
    assert updates == [], "a new primitive changes no state"


def test_a_wait_names_the_tasks_holding_what_it_waits_for(ck, run):
    """A Lock.acquire that has to wait says who holds the lock as it begins:
    ids and names, and a held_by link to the holder's span."""

    async def holder(lock, ready):
        async with lock:
            ready.set()
            await asyncio.sleep(0.01)

    async def main():
        lock, ready = asyncio.Lock(), asyncio.Event()
        held = asyncio.create_task(holder(lock, ready), name="holder")
        await ready.wait()
        async with lock:
            pass
        await held

    run(main)
    spans = ck.traced.finished_spans()
    holder_span = one(spans, "task holder")
    (wait,) = [s for s in by_name(spans, "async_op Lock.acquire") if s.attributes.get(sc.HELD_BY_IDS)]
    assert list(wait.attributes[sc.HELD_BY_IDS]) == [holder_span.attributes[sc.TASK_ID]]
    assert list(wait.attributes[sc.HELD_BY_NAMES]) == ["holder"]
    held_by = [x for x in wait.links if x.attributes.get(sc.LINK_RELATION) == sc.LINK_HELD_BY]
    assert [x.context.span_id for x in held_by] == [holder_span.context.span_id]


class _Service:
    def __init__(self) -> None:
        self.pool = asyncio.Semaphore(2)
        jobs: asyncio.Queue[int] = asyncio.Queue()
        self.jobs = jobs
        self.first, self.second = asyncio.Lock(), asyncio.Lock()  # two targets: no name


def test_a_resource_is_named_by_the_assignment_that_made_it(ck, run):
    """``self.pool = asyncio.Semaphore(2)`` is ``pool``; an annotated target
    counts; a line with two targets names neither. Span names stay the type's."""

    async def main():
        service = _Service()
        async with service.pool:
            await service.jobs.put(1)
        return [ck.rid(r) for r in (service.pool, service.jobs, service.first)]

    pool, jobs, first = run(main)
    spans = ck.traced.finished_spans()
    assert resource_span(spans, pool).attributes[sc.RESOURCE_NAME] == "pool"
    assert resource_span(spans, pool).name == "resource asyncio.Semaphore"
    assert resource_span(spans, jobs).attributes[sc.RESOURCE_NAME] == "jobs"
    assert sc.RESOURCE_NAME not in resource_span(spans, first).attributes


# -- resource end ------------------------------------------------------------------------


def test_resource_ends_when_the_primitive_is_collected(ck, run):
    async def main():
        lock = asyncio.Lock()
        async with lock:
            pass
        rid = ck.rid(lock)
        del lock
        gc.collect()
        return rid

    rid = run(main)
    spans = ck.traced.finished_spans()  # without closing the session
    res = resource_span(spans, rid)
    assert sc.UNFINISHED not in res.attributes
    assert final_attributes(res, {"locked": 0, "waiters": 0}) == {"locked": False, "waiters": 0}
