"""The public API for resources of your own: ``otel_asyncres.Resource``."""

from __future__ import annotations

import asyncio
import gc

import pytest

import otel_asyncres
from conftest import by_name, events, make_traced, one
from otel_asyncres.bridge import semconv as sc

POOL = "resource mylib.Pool"


def replay(span, initial):
    state = dict(initial)
    for event in events(span, "state_update"):
        for key, value in event.attributes.items():
            if key.endswith((".op", ".unit")):
                continue
            op = event.attributes[f"{key}.op"]
            state[key] = value if op == "override" else state[key] + (value if op == "add" else -value)
    return state


def test_without_instrumentation_it_is_a_noop_that_keeps_state():
    pool = otel_asyncres.Resource("mylib.Pool", state={"idle": 2})
    pool.sub(idle=1)
    pool.update(label="x")

    async def main():
        async with pool.operation("Pool.acquire") as op:
            op.update(attempt=1)
            await asyncio.sleep(0)

    asyncio.run(main())
    pool.close()
    assert pool.state == {"idle": 1, "label": "x"}


def test_state_updates_replay_to_the_real_state(traced):
    async def main():
        pool = otel_asyncres.Resource("mylib.Pool", kind="Sync", state={"idle": 3, "in_use": 0})
        pool.sub(idle=2)
        pool.add(in_use=2)
        pool.update(closed=False)
        pool.add(in_use=1.5)
        return pool.state

    final = asyncio.run(main())
    span = one(traced.spans(), POOL)
    assert span.attributes[sc.RESOURCE_KIND] == "Sync"
    assert span.attributes[sc.CODE_FILE_PATH] == __file__
    assert replay(span, {"idle": 3, "in_use": 0}) == final == {"idle": 1, "in_use": 3.5, "closed": False}
    assert {
        k[len(sc.RESOURCE_STATE_PREFIX) :]: v for k, v in span.attributes.items() if "state." in k
    } == final


def test_operations_are_ops_of_the_task_woken_by_whoever_woke_it(traced, run):
    async def holder(pool, gate):
        await asyncio.sleep(0.001)
        gate.set()

    async def user(pool, gate):
        async with pool.operation("Pool.acquire") as op:
            op.update(attempt=1)
            await gate.wait()
        return "got it"

    async def main():
        pool = otel_asyncres.Resource("mylib.Pool", state={"idle": 0})
        gate = asyncio.Event()
        asyncio.create_task(holder(pool, gate), name="holder")
        return await asyncio.create_task(user(pool, gate), name="user")

    assert run(main) == "got it"
    spans = traced.spans()
    op = one(spans, "async_op Pool.acquire")
    user_span, holder_span = one(spans, "task user"), one(spans, "task holder")
    assert op.parent.span_id == user_span.context.span_id
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "ok"
    assert op.attributes[f"{sc.ASYNC_OP_STATE_PREFIX}attempt"] == 1
    relations = {link.attributes[sc.LINK_RELATION]: link.context.span_id for link in op.links}
    assert relations["resource"] == one(spans, POOL).context.span_id
    assert relations["woken_by"] == holder_span.context.span_id


def test_an_op_made_inside_another_op_of_its_task_is_its_child(traced, run):
    """The Event.wait inside a custom Pool.acquire, and the sleep inside an
    asyncio.timeout, hang under the op they were made in, not beside it."""

    async def user(pool, gate):
        async with pool.operation("Pool.acquire"):
            await gate.wait()
        if hasattr(asyncio, "timeout"):  # 3.11+
            async with asyncio.timeout(1):
                await asyncio.sleep(0.001)

    async def main():
        pool = otel_asyncres.Resource("mylib.Pool", state={"idle": 0})
        gate = asyncio.Event()
        task = asyncio.create_task(user(pool, gate), name="user")
        await asyncio.sleep(0.001)
        gate.set()
        await task

    run(main)
    spans = traced.spans()
    acquire, wait = one(spans, "async_op Pool.acquire"), one(spans, "async_op Event.wait")
    assert wait.parent.span_id == acquire.context.span_id
    user_span = one(spans, "task user")
    assert acquire.parent.span_id == user_span.context.span_id
    if hasattr(asyncio, "timeout"):
        timeout = one(spans, "async_op timeout")
        mine = sc.TASK_ID, user_span.attributes[sc.TASK_ID]
        (sleep,) = [s for s in by_name(spans, "async_op sleep") if s.attributes.get(mine[0]) == mine[1]]
        assert sleep.parent.span_id == timeout.context.span_id


def test_operation_outcomes(traced):
    async def main():
        pool = otel_asyncres.Resource("mylib.Pool")
        with pytest.raises(KeyError):
            async with pool.operation("Pool.fails"):
                raise KeyError("x")
        task = asyncio.create_task(_cancelled_op(pool))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with pool.operation("Pool.sync"):
            pass

    asyncio.run(main())
    spans = traced.spans()
    assert one(spans, "async_op Pool.fails").attributes[sc.ASYNC_OP_OUTCOME] == "error"
    assert one(spans, "async_op Pool.waits").attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"
    assert one(spans, "async_op Pool.sync").attributes[sc.ASYNC_OP_OUTCOME] == "ok"


async def _cancelled_op(pool):
    async with pool.operation("Pool.waits"):
        await asyncio.sleep(10)


def test_close_ends_it_once_and_collection_ends_it(traced):
    closed = otel_asyncres.Resource("mylib.Closed")
    closed.close()
    closed.close()
    dropped = otel_asyncres.Resource("mylib.Dropped")
    del dropped
    gc.collect()
    spans = traced.spans()
    for name in ("resource mylib.Closed", "resource mylib.Dropped"):
        span = one(spans, name)  # ended once
        assert sc.UNFINISHED not in span.attributes, f"{name} ended before the session did"


def test_made_before_instrument_is_announced_at_first_use():
    pool = otel_asyncres.Resource("mylib.Pool", state={"idle": 5})
    pool.sub(idle=1)  # not instrumented yet
    handle = make_traced()
    try:
        pool.sub(idle=1)
        spans = handle.spans()
    finally:
        otel_asyncres.uninstrument()
    span = one(spans, POOL)
    assert replay(span, {"idle": 4}) == {"idle": 3} == pool.state


def test_non_numeric_add_is_a_clear_error(traced):
    pool = otel_asyncres.Resource("mylib.Pool", state={"name": "a"})
    with pytest.raises(TypeError, match=r"mylib\.Pool\.name is not a number"):
        pool.add(name=1)


def test_child_resource(traced):
    pool = otel_asyncres.Resource("mylib.Pool")
    limiter = otel_asyncres.Resource("mylib.Limiter", parent=pool)
    limiter.update(tokens=1)
    spans = traced.spans()
    assert one(spans, "resource mylib.Limiter").parent.span_id == one(spans, POOL).context.span_id


def test_a_resource_is_named_by_the_program_or_by_its_assignment(traced):
    """Two pools of one type are told apart (issue 13 item 3): by the name
    given to the API, else by the name they are assigned to."""

    class Service:
        def __init__(self) -> None:
            self.primary = otel_asyncres.Resource("mylib.Pool", state={"idle": 1}, name="db-primary")
            self.replica = otel_asyncres.Resource("mylib.Pool", state={"idle": 1})

    async def main():
        service = Service()
        service.primary.close()
        service.replica.close()

    asyncio.run(main())
    names = sorted(span.attributes.get(sc.RESOURCE_NAME) for span in by_name(traced.spans(), POOL))
    assert names == ["db-primary", "replica"]
