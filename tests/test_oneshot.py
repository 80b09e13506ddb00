"""Futures as one-shot channels: the resource ``asyncio.Future`` on every path.

The replayed ``state_update`` events must equal the future's real state after
every path: set after the await, set before it, cancelled by the sender,
abandoned by a cancelled receiver, completed with an exception, and plain
``asyncio.Future()`` objects adopted at their first await. Paths that involve a
wait are checked in both modes: the default (plain futures, adopted when a task
parks on them) and ``futures=subclass`` (a recording subclass from
``loop.create_future()``); paths with no wait only exist in the second.
"""

from __future__ import annotations

import asyncio
import gc
import traceback

import pytest
from opentelemetry.trace import StatusCode

import otel_asyncres
from conftest import events, make_traced, one, state_updates
from otel_asyncres.bridge import semconv as sc

FUTURE = "resource asyncio.Future"
AWAIT = "async_op Future.__await__"
STATE = ("value_sent", "value_received", "cancelled")


def replay(resource_span) -> dict:
    """The state obtained by replaying the span's state_update events over the
    initial state (a one-shot starts with nothing sent, received or cancelled)."""
    state = dict.fromkeys(STATE, False)
    for event in state_updates(resource_span):
        for key, value in event.attributes.items():
            if key.endswith(".op"):
                continue
            assert event.attributes[f"{key}.op"] == "override"
            state[key] = value
    return state


def final_state(resource_span) -> dict:
    return {k: resource_span.attributes[sc.RESOURCE_STATE_PREFIX + k] for k in STATE}


def real_state(fut: asyncio.Future, received: bool) -> dict:
    return {
        "value_sent": fut.done() and not fut.cancelled(),
        "value_received": received,
        "cancelled": fut.cancelled(),
    }


def task_span(spans, name):
    return one(spans, f"task {name}")


@pytest.fixture(params=["adopt", "subclass"])
def traced(request):
    """Both modes of following futures (this overrides conftest's fixture)."""
    handle = make_traced(futures=request.param)
    handle.mode = request.param
    try:
        yield handle
    finally:
        otel_asyncres.uninstrument()


@pytest.fixture
def subclass_traced():
    handle = make_traced(futures="subclass")
    try:
        yield handle
    finally:
        otel_asyncres.uninstrument()


def test_set_after_await(traced, run):
    kept = {}

    async def receiver(fut):
        return await fut

    async def sender(fut):
        await asyncio.sleep(0)
        fut.set_result(5)

    async def main():
        fut = asyncio.get_running_loop().create_future()
        kept["fut"] = fut
        rx = asyncio.create_task(receiver(fut), name="receiver")
        asyncio.create_task(sender(fut), name="sender")
        return await rx

    assert run(main) == 5
    spans = traced.spans()
    res = one(spans, FUTURE)
    assert replay(res) == final_state(res) == real_state(kept["fut"], received=True)
    assert [list(e.attributes)[0] for e in state_updates(res)] == ["value_sent", "value_received"]
    assert res.attributes[sc.RESOURCE_KIND] == "Sync"
    assert res.attributes[sc.RESOURCE_CONCRETE_TYPE] == "asyncio.Future"
    receiver_span, sender_span = task_span(spans, "receiver"), task_span(spans, "sender")
    op = one(spans, AWAIT)
    # The op hangs under the task that awaited it and points at the resource.
    assert op.parent.span_id == receiver_span.context.span_id
    relations = {link.attributes[sc.LINK_RELATION]: link.context.span_id for link in op.links}
    assert relations == {"resource": res.context.span_id, "woken_by": sender_span.context.span_id}
    assert op.attributes[sc.WAKER_TASK_ID] == sender_span.attributes[sc.TASK_ID]
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "ok"
    assert op.attributes[sc.ASYNC_OP_SOURCE] == "Future.__await__"
    assert op.attributes[sc.CODE_FUNCTION_NAME].endswith("receiver")
    polls = [s for s in spans if s.name == "poll" and s.parent.span_id == op.context.span_id]
    assert [p.attributes[sc.POLL_IS_READY] for p in sorted(polls, key=lambda p: p.start_time)] == [
        False,
        True,
    ]
    assert [e.attributes["is_ready"] for e in events(op, "poll_op")] == [False, True]
    assert {e.attributes["op_name"] for e in events(op, "poll_op")} == {"Future.__await__"}
    (wake,) = events(receiver_span, "waker.wake")
    assert wake.attributes[sc.WAKER_TASK_ID] == sender_span.attributes[sc.TASK_ID]
    assert wake.attributes[sc.RESOURCE_ID] == res.attributes[sc.RESOURCE_ID]
    assert events(receiver_span, "waker.clone")[0].attributes[sc.ASYNC_OP_ID] == op.attributes[sc.ASYNC_OP_ID]


def test_set_before_await_is_a_receive_without_an_op(subclass_traced, run):
    traced = subclass_traced
    kept = {}

    async def main():
        fut = asyncio.get_running_loop().create_future()
        kept["fut"] = fut
        fut.set_result("early")
        return await fut

    assert run(main) == "early"
    spans = traced.spans()
    res = one(spans, FUTURE)
    assert replay(res) == final_state(res) == real_state(kept["fut"], received=True)
    assert not [s for s in spans if s.name == AWAIT]  # it never waited


def test_cancelled_by_the_sender(traced, run):
    kept = {}

    async def receiver(fut):
        try:
            await fut
        except asyncio.CancelledError:
            return "rx saw cancel"

    async def main():
        fut = asyncio.get_running_loop().create_future()
        kept["fut"] = fut
        rx = asyncio.create_task(receiver(fut), name="receiver")
        await asyncio.sleep(0)
        fut.cancel()
        return await rx

    assert run(main) == "rx saw cancel"
    spans = traced.spans()
    res = one(spans, FUTURE)
    assert replay(res) == final_state(res) == real_state(kept["fut"], received=False)
    assert final_state(res)["cancelled"] is True
    op = one(spans, AWAIT)
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"


def test_receiver_cancelled_while_waiting(traced, run):
    kept = {}

    async def receiver(fut):
        await fut

    async def main():
        fut = asyncio.get_running_loop().create_future()
        kept["fut"] = fut
        rx = asyncio.create_task(receiver(fut), name="receiver")
        await asyncio.sleep(0)
        rx.cancel()
        await asyncio.gather(rx, return_exceptions=True)
        return rx.cancelled()

    assert run(main) is True
    spans = traced.spans()
    res = one(spans, FUTURE)
    # Cancelling a task cancels the future it waits on: asyncio really does that.
    assert kept["fut"].cancelled()
    assert replay(res) == final_state(res) == real_state(kept["fut"], received=False)
    op = one(spans, AWAIT)
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"
    rx_span = task_span(spans, "receiver")
    assert [e.attributes[sc.WAKER_DROP_REASON] for e in events(rx_span, "waker.drop")] == ["cancelled"]
    assert rx_span.attributes[sc.TASK_OUTCOME] == "cancelled"


def test_exception_sent_and_received(traced, run):
    kept = {}

    async def receiver(fut):
        try:
            await fut
        except KeyError as exc:
            kept["tb"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            return "got KeyError"

    async def main():
        fut = asyncio.get_running_loop().create_future()
        kept["fut"] = fut
        rx = asyncio.create_task(receiver(fut), name="receiver")
        await asyncio.sleep(0)
        fut.set_exception(KeyError("k"))
        return await rx

    assert run(main) == "got KeyError"
    spans = traced.spans()
    res = one(spans, FUTURE)
    assert replay(res) == final_state(res) == real_state(kept["fut"], received=True)
    assert one(spans, AWAIT).attributes[sc.ASYNC_OP_OUTCOME] == "error"
    # No frame of ours in what the receiver sees.
    assert "otel_asyncres" not in kept["tb"]


def test_set_before_await_involves_no_wait_and_no_resource_by_default(run):
    handle = make_traced()
    try:

        async def main():
            fut = asyncio.get_running_loop().create_future()
            assert type(fut) is asyncio.Future
            fut.set_result("early")
            return await fut

        assert run(main) == "early"
        spans = handle.spans()
    finally:
        otel_asyncres.uninstrument()
    assert not [s for s in spans if s.name in (FUTURE, AWAIT)]


def test_result_read_directly_is_a_receive(subclass_traced):
    traced = subclass_traced

    async def main():
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(1)
        await asyncio.sleep(0)
        return fut.result()

    assert asyncio.run(main()) == 1
    res = one(traced.spans(), FUTURE)
    assert final_state(res) == {"value_sent": True, "value_received": True, "cancelled": False}


def test_plain_future_is_adopted_at_first_await(traced, run):
    kept = {}

    async def receiver(fut):
        return await fut

    async def main():
        fut = asyncio.Future()  # a constructor call: adopted when awaited
        kept["fut"] = fut
        rx = asyncio.create_task(receiver(fut), name="receiver")
        await asyncio.sleep(0)
        fut.set_result(9)
        return await rx

    assert run(main) == 9
    spans = traced.spans()
    res = one(spans, FUTURE)
    assert res.attributes[sc.RESOURCE_ADOPTED] is True
    assert res.attributes[sc.CODE_FUNCTION_NAME].endswith("receiver")
    assert replay(res) == final_state(res) == real_state(kept["fut"], received=True)
    op = one(spans, AWAIT)
    main_id = next(s for s in spans if s.name.endswith(".main")).attributes[sc.TASK_ID]
    assert op.attributes[sc.WAKER_TASK_ID] == main_id


def test_futures_asyncio_makes_for_itself_are_not_resources(traced):
    async def main():
        loop = asyncio.get_running_loop()
        lock = asyncio.Lock()
        await lock.acquire()
        waiter = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0.001)
        lock.release()
        await waiter
        lock.release()
        await asyncio.shield(asyncio.sleep(0))
        await loop.run_in_executor(None, sum, [1, 2])
        await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0))
        await asyncio.wait_for(asyncio.sleep(0), 1)
        q: asyncio.Queue[int] = asyncio.Queue()
        getter = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.put_nowait(1)
        await getter

    asyncio.run(main())
    spans = traced.spans()
    assert not [s for s in spans if s.name in (FUTURE, AWAIT)], [s.name for s in spans]


def test_future_repr_type_and_behaviour_unchanged(traced):
    seen = {}

    async def main():
        fut = asyncio.get_running_loop().create_future()
        seen["exact_type"] = type(fut) is asyncio.Future
        seen["repr"] = repr(fut)
        seen["isinstance"] = isinstance(fut, asyncio.Future) and asyncio.isfuture(fut)
        fut.set_result(3)
        seen["done_repr"] = repr(fut)
        with pytest.raises(asyncio.InvalidStateError):
            fut.set_result(4)
        other = asyncio.get_running_loop().create_future()
        other.cancel("why")
        try:
            other.result()
        except asyncio.CancelledError as exc:
            seen["cancel_args"] = exc.args
        return await fut

    assert asyncio.run(main()) == 3
    assert seen["repr"] == "<Future pending>"
    assert seen["done_repr"] == "<Future finished result=3>"
    assert seen["isinstance"]
    assert seen["cancel_args"] == ("why",)
    # Only the opt-in subclass mode changes the exact type.
    assert seen["exact_type"] is (traced.mode == "adopt")


def test_resource_ends_when_the_future_is_collected(traced):
    async def main():
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, None)
        await fut
        del fut
        gc.collect()
        await asyncio.sleep(0)

    asyncio.run(main())
    spans = traced.finished_spans()  # without closing the session
    res = one(spans, FUTURE)
    assert sc.UNFINISHED not in res.attributes


def test_op_parent_resource_option():
    handle = make_traced(op_parent="resource")
    try:

        async def receiver(fut):
            return await fut

        async def main():
            fut = asyncio.get_running_loop().create_future()
            rx = asyncio.create_task(receiver(fut), name="receiver")
            await asyncio.sleep(0)
            fut.set_result(1)
            return await rx

        assert asyncio.run(main()) == 1
        spans = handle.spans()
    finally:
        otel_asyncres.uninstrument()
    res, op = one(spans, FUTURE), one(spans, AWAIT)
    assert op.parent.span_id == res.context.span_id
    relations = {link.attributes[sc.LINK_RELATION]: link.context.span_id for link in op.links}
    assert relations["awaited_by"] == task_span(spans, "receiver").context.span_id


def test_failed_future_await_marks_no_error_status_on_the_resource(traced):
    async def main():
        fut = asyncio.get_running_loop().create_future()

        async def fail_later():
            await asyncio.sleep(0)
            fut.set_exception(RuntimeError("nope"))

        asyncio.create_task(fail_later())
        with pytest.raises(RuntimeError):
            await fut

    asyncio.run(main())
    res = one(traced.spans(), FUTURE)
    assert res.status.status_code is StatusCode.UNSET
