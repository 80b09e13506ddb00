"""Tasks: their state on the loop and its mapping onto spans, per DESIGN.md §2.

Every test runs real asyncio (on every loop kind the machine has, where the
``run`` fixture is used) against the real OpenTelemetry SDK with its in-memory
exporter.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode

import otel_asyncres
from conftest import events, make_traced, one, uvloop
from otel_asyncres.bridge import semconv as sc
from otel_asyncres.export.console import render

THIS_FILE = __file__


def test_span_names_ids_and_parents(traced, run):
    async def leaf():
        await asyncio.sleep(0)

    async def middle():
        await asyncio.create_task(leaf())

    async def main():
        await asyncio.create_task(middle(), name="the-middle")

    run(main)
    spans = traced.spans()
    root = one(spans, "task test_span_names_ids_and_parents.<locals>.main")
    mid = one(spans, "task the-middle")
    leaf_span = one(spans, "task test_span_names_ids_and_parents.<locals>.leaf")
    # Default names ("Task-7") are not span names: they would be high-cardinality.
    assert mid.attributes[sc.TASK_NAME] == "the-middle"
    # CPython 3.13.0 names factory-made tasks "None"; the attribute says so.
    assert (
        leaf_span.attributes[sc.TASK_NAME].startswith("Task-") or leaf_span.attributes[sc.TASK_NAME] == "None"
    )
    assert root.parent is None
    assert mid.parent.span_id == root.context.span_id
    assert leaf_span.parent.span_id == mid.context.span_id
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    ids = [s.attributes[sc.TASK_ID] for s in (root, mid, leaf_span)]
    assert len(set(ids)) == 3
    assert mid.attributes[sc.TASK_PARENT_ID] == root.attributes[sc.TASK_ID]
    assert leaf_span.attributes[sc.TASK_PARENT_ID] == mid.attributes[sc.TASK_ID]
    assert mid.attributes[sc.TASK_COROUTINE] == "test_span_names_ids_and_parents.<locals>.middle"


def test_each_run_outside_a_task_starts_its_own_trace(traced):
    async def main():
        await asyncio.sleep(0)

    asyncio.run(main())
    asyncio.run(main())
    roots = [s for s in traced.spans() if s.name.endswith("<locals>.main")]
    assert len(roots) == 2
    assert roots[0].context.trace_id != roots[1].context.trace_id
    assert all(s.parent is None for s in roots)


def test_spawn_location_points_at_user_code(traced, run):
    lines = {}

    async def child():
        pass

    async def main():
        lines["spawn"] = sys._getframe().f_lineno + 1
        await asyncio.create_task(child(), name="located")

    run(main)
    span = one(traced.spans(), "task located")
    assert span.attributes[sc.CODE_FILE_PATH] == THIS_FILE
    assert span.attributes[sc.CODE_LINE_NUMBER] == lines["spawn"]
    assert span.attributes[sc.CODE_FUNCTION_NAME].endswith("main")


def test_statistics_polls_wakes_and_durations(traced, run):
    async def yielder():
        for _ in range(3):
            await asyncio.sleep(0)

    async def main():
        await asyncio.create_task(yielder(), name="yielder")

    run(main)
    span = one(traced.spans(), "task yielder")
    a = span.attributes
    assert a[sc.TASK_POLLS] == 4
    assert a[sc.TASK_WAKES] == 3
    assert a[sc.TASK_SELF_WAKES] == 3  # sleep(0) is the task scheduling itself
    assert a[sc.TASK_WAKER_CLONES] == 0
    lifetime = (span.end_time - span.start_time) / 1e9
    total = a[sc.TASK_BUSY] + a[sc.TASK_SCHEDULED] + a[sc.TASK_IDLE]
    assert a[sc.TASK_BUSY] > 0 and a[sc.TASK_SCHEDULED] > 0
    assert total == pytest.approx(lifetime, abs=1e-6)
    assert a[sc.TASK_OUTCOME] == "ok"


def test_statistics_follow_each_poll_in_place(traced, run):
    """Nothing is made per poll: the task's state counts its polls and wakes
    as they happen, and its span says the same."""
    seen = {}

    async def child():
        st = traced.session.instrumentation.tasks.current()
        seen["first"] = (st.polls, st.wakes, st.self_wakes)
        await asyncio.sleep(0)
        seen["second"] = (st.polls, st.wakes, st.self_wakes)

    async def main():
        await asyncio.create_task(child(), name="child")

    run(main)
    assert seen["first"] in ((1, 0, 0), (0, 0, 0))  # eager: its first poll is noted when create_task returns
    assert seen["second"] == (2, 1, 1)  # the sleep(0) was a self-wake
    span = one(traced.spans(), "task child")
    assert (span.attributes[sc.TASK_POLLS], span.attributes[sc.TASK_WAKES]) == (2, 1)
    assert span.attributes[sc.TASK_SELF_WAKES] == 1


def test_join_wake_names_the_task_that_finished(traced, run):
    async def worker():
        await asyncio.sleep(0.001)
        return 7

    async def main():
        return await asyncio.create_task(worker(), name="worker")

    assert run(main) == 7
    spans = traced.spans()
    worker_span = one(spans, "task worker")
    main_span = one(spans, "task test_join_wake_names_the_task_that_finished.<locals>.main")
    worker_id = worker_span.attributes[sc.TASK_ID]
    clone = events(main_span, "waker.clone")
    wake = events(main_span, "waker.wake")
    assert [e.attributes[sc.AWAITED_TASK_ID] for e in clone] == [worker_id]
    assert [e.attributes[sc.WAKER_TASK_ID] for e in wake] == [worker_id]
    assert wake[0].attributes[sc.WAKE_CAUSE] == "future"
    assert main_span.attributes[sc.TASK_WAKER_CLONES] == 1
    assert main_span.attributes[sc.TASK_WAKER_DROPS] == 1  # consumed by the wake


def test_outcomes_error_and_cancelled(traced, run):
    async def failing():
        await asyncio.sleep(0)
        raise ValueError("bad input")

    async def sleeper():
        await asyncio.sleep(10)

    async def main():
        bad = asyncio.create_task(failing(), name="failing")
        slow = asyncio.create_task(sleeper(), name="sleeper")
        await asyncio.sleep(0)
        slow.cancel()
        results = await asyncio.gather(bad, slow, return_exceptions=True)
        return [type(x).__name__ for x in results]

    assert run(main) == ["ValueError", "CancelledError"]
    spans = traced.spans()
    bad = one(spans, "task failing")
    assert bad.attributes[sc.TASK_OUTCOME] == "error"
    assert bad.status.status_code is StatusCode.ERROR
    assert "ValueError: bad input" in bad.status.description
    (exc,) = events(bad, "exception")
    assert exc.attributes["exception.type"] == "ValueError"
    assert exc.attributes["exception.message"] == "bad input"
    assert 'raise ValueError("bad input")' in exc.attributes["exception.stacktrace"]
    assert exc.timestamp == bad.end_time
    slow = one(spans, "task sleeper")
    assert slow.attributes[sc.TASK_OUTCOME] == "cancelled"
    assert slow.status.status_code is StatusCode.UNSET
    assert not events(slow, "exception")


@pytest.mark.parametrize(
    ("raised", "outcome"),
    [
        (SystemExit(0), "ok"),
        (SystemExit(None), "ok"),
        (SystemExit(3), "error"),
        (KeyboardInterrupt(), "cancelled"),
    ],
)
def test_a_clean_exit_is_ok_and_an_interrupt_is_no_error(traced, raised, outcome):
    """``sys.exit(0)`` in a task ends it as cleanly as returning would; a
    KeyboardInterrupt interrupts it: neither is shown as an (empty) error."""

    async def main():
        await asyncio.sleep(0)
        raise raised

    with pytest.raises(type(raised)):
        asyncio.run(main())
    (span,) = [s for s in traced.spans() if s.name.endswith(".main")]
    assert span.attributes[sc.TASK_OUTCOME] == outcome
    failed = outcome == "error"
    assert (span.status.status_code is StatusCode.ERROR) == failed
    assert bool(events(span, "exception")) == failed


@pytest.mark.skipif(uvloop is None, reason="uvloop is not installed")
def test_under_uvloop_run_the_root_task_is_named_after_the_programs_coroutine(traced):
    """uvloop.run() wraps the program's coroutine in one of its own: the
    root is named as asyncio.run() would name it, not run.<locals>.wrapper."""

    async def program():
        await asyncio.sleep(0)
        return 7

    assert uvloop.run(program()) == 7
    (root,) = [s for s in traced.spans() if s.name.startswith("task ")]
    assert root.name.endswith(".program"), root.name


def test_cancel_while_waiting_drops_the_waker(traced, run):
    async def waiter(fut):
        try:
            await fut
        except asyncio.CancelledError:
            return "cancelled"

    async def main():
        fut = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(waiter(fut), name="waiter")
        await asyncio.sleep(0)
        task.cancel()
        return await task

    assert run(main) == "cancelled"
    span = one(traced.spans(), "task waiter")
    (drop,) = events(span, "waker.drop")
    assert drop.attributes[sc.WAKER_DROP_REASON] == "cancelled"
    wake = events(span, "waker.wake")
    assert [e.attributes[sc.WAKE_CAUSE] for e in wake] == ["cancel"]
    # The cancelling task is the waker.
    main_id = [
        s.attributes[sc.TASK_ID] for s in traced.exporter.get_finished_spans() if s.name.endswith(".main")
    ]
    assert wake[0].attributes[sc.WAKER_TASK_ID] == main_id[0]
    assert span.attributes[sc.TASK_WAKER_CLONES] == span.attributes[sc.TASK_WAKER_DROPS] == 1


def test_task_identity_is_untouched(traced, run):
    seen = {}

    async def child():
        # Suspend first: on CPython 3.12.1, get_coro() of a task that finished
        # eagerly segfaults, with or without instrumentation (a CPython bug).
        await asyncio.sleep(0)
        return 1

    async def main():
        coro = child()
        task = asyncio.create_task(coro, name="ident")
        seen["coro_same"] = task.get_coro() is coro
        seen["type"] = type(task)
        seen["name"] = task.get_name()
        seen["repr"] = repr(task)
        await task
        seen["done_repr"] = repr(task)

    run(main)
    assert seen["coro_same"]
    assert seen["type"] in (asyncio.Task, getattr(asyncio.tasks, "_PyTask", asyncio.Task))
    assert seen["name"] == "ident"
    assert "coro=<test_task_identity_is_untouched.<locals>.child()" in seen["repr"]
    assert "otel_asyncres" not in seen["repr"] + seen["done_repr"]


def test_eager_tasks_first_poll_is_recorded(traced):
    if sys.version_info < (3, 12):
        pytest.skip("eager task factory is 3.12+")

    async def immediate():
        return 1

    async def suspends():
        await asyncio.sleep(0)
        return 2

    async def main():
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        a = asyncio.create_task(immediate(), name="immediate")
        assert a.done()  # ran to completion inside create_task
        b = asyncio.create_task(suspends(), name="suspends")
        return await a + await b

    assert asyncio.run(main()) == 3
    spans = traced.spans()
    immediate_span = one(spans, "task immediate")
    assert immediate_span.attributes[sc.TASK_POLLS] == 1
    assert immediate_span.attributes[sc.TASK_OUTCOME] == "ok"
    suspends_span = one(spans, "task suspends")
    assert suspends_span.attributes[sc.TASK_POLLS] == 2
    assert suspends_span.attributes[sc.TASK_SELF_WAKES] == 1


def test_task_built_directly_and_task_alive_before_instrument():
    loop = asyncio.new_event_loop()
    try:

        async def early():
            await asyncio.sleep(0.01)

        early_task = loop.create_task(early(), name="early")  # before instrument()
        handle = make_traced()
        try:

            async def direct():
                await asyncio.sleep(0)

            async def main():
                await asyncio.Task(direct(), name="direct")
                await early_task

            loop.run_until_complete(main())
            spans = handle.spans()
        finally:
            otel_asyncres.uninstrument()
    finally:
        loop.close()
    direct_span = one(spans, "task direct")
    assert direct_span.attributes[sc.CODE_FILE_PATH] == THIS_FILE
    assert sc.TASK_ADOPTED not in direct_span.attributes
    early_span = one(spans, "task early")
    assert early_span.attributes[sc.TASK_ADOPTED] is True
    assert early_span.attributes[sc.TASK_OUTCOME] == "ok"


def test_application_span_at_spawn_is_the_parent(traced, run):
    tracer = trace.get_tracer("app", tracer_provider=traced.session.provider)

    async def grandchild():
        await asyncio.sleep(0)

    async def handler():
        await asyncio.create_task(grandchild(), name="grandchild")

    async def main():
        with tracer.start_as_current_span("GET /orders"):
            await asyncio.create_task(handler(), name="handler")

    run(main)
    spans = traced.spans()
    request = one(spans, "GET /orders")
    main_span = next(s for s in spans if s.name.endswith("<locals>.main"))
    handler_span = one(spans, "task handler")
    grand = one(spans, "task grandchild")
    assert handler_span.parent.span_id == request.context.span_id
    assert handler_span.context.trace_id == request.context.trace_id
    (link,) = handler_span.links
    assert link.context.span_id == main_span.context.span_id
    assert link.attributes[sc.LINK_RELATION] == "spawned_by"
    # The grandchild is spawned by the handler inside the same application
    # span: its parent is the handler task, not the request again.
    assert grand.parent.span_id == handler_span.context.span_id


def test_parents_never_come_from_the_bridge_threads_context(traced):
    tracer = trace.get_tracer("app", tracer_provider=TracerProvider())

    async def main():
        await asyncio.sleep(0)

    asyncio.run(main())
    with tracer.start_as_current_span("unrelated"):
        traced.flush()  # the bridge runs here, inside an unrelated current span
    spans = traced.spans()
    main_span = next(s for s in spans if s.name.endswith("<locals>.main"))
    assert main_span.parent is None


def test_timestamps_are_the_loops(traced, run):
    """A span starts when its task was spawned and ends when it ended, as
    noted on the loop: not when the bridge ran."""
    seen = {}

    async def child():
        await asyncio.sleep(0.002)

    async def main():
        before = time.time_ns()
        task = asyncio.create_task(child(), name="child")
        seen["spawn"] = (before, time.time_ns())
        await task
        seen["end"] = time.time_ns()

    run(main)
    spans = traced.spans()
    span = one(spans, "task child")
    low, high = seen["spawn"]
    assert low <= span.start_time <= high
    assert span.start_time < span.end_time <= seen["end"]
    for s in spans:
        for e in s.events:
            assert s.start_time <= e.timestamp <= s.end_time, (s.name, e.name)


def test_task_destroyed_while_pending_is_lost(traced):
    async def forever():
        await asyncio.get_running_loop().create_future()

    loop = asyncio.new_event_loop()
    try:

        async def main():
            asyncio.create_task(forever(), name="forgotten")
            await asyncio.sleep(0)

        loop.run_until_complete(main())
    finally:
        loop.close()
    del loop, main
    gc.collect()
    span = one(traced.spans(), "task forgotten")
    assert span.attributes[sc.TASK_OUTCOME] == "lost"
    (drop,) = events(span, "waker.drop")
    assert drop.attributes[sc.WAKER_DROP_REASON] == "task destroyed"


def test_loops_in_threads_keep_their_own_tasks(traced):
    async def worker(tag):
        for _ in range(20):
            await asyncio.sleep(0)
        return tag

    async def main(tag):
        return await asyncio.create_task(worker(tag), name=f"worker-{tag}")

    results = []
    threads = [threading.Thread(target=lambda t=t: results.append(asyncio.run(main(t)))) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["a", "b"]
    spans = traced.spans()
    for tag in "ab":
        worker_span = one(spans, f"task worker-{tag}")
        parent = next(s for s in spans if s.context.span_id == worker_span.parent.span_id)
        assert parent.name.endswith("<locals>.main")
        assert worker_span.attributes[sc.TASK_SELF_WAKES] == 20
        # every wake of this worker came from itself, never from the other thread's task
        wakers = {e.attributes[sc.WAKER_TASK_ID] for e in events(worker_span, "waker.wake")}
        assert wakers == {worker_span.attributes[sc.TASK_ID]}


class _ExplodingConsumer:
    def sync(self, entity):
        raise RuntimeError("consumer bug")

    def tick(self, now):
        raise RuntimeError("consumer bug")

    def flush(self, final=False):
        raise RuntimeError("consumer bug")

    def shutdown(self):
        pass


def test_failures_of_our_own_are_counted_not_raised(traced, monkeypatch, caplog):
    from otel_asyncres.instrumentation import tasks as tasks_module

    traced.session.handoff.add_consumer(_ExplodingConsumer())

    def broken_location():
        raise RuntimeError("instrumentation bug")

    monkeypatch.setattr(tasks_module, "spawn_location", broken_location)

    async def child():
        await asyncio.sleep(0)
        return 5

    async def main():
        return await asyncio.create_task(child())

    with caplog.at_level("WARNING", logger="otel_asyncres"):
        assert asyncio.run(main()) == 5
        traced.flush()
    errors = traced.session.handoff.errors
    assert errors.get("call_soon", 0) >= 1  # where spawns are seen
    assert errors.get("_ExplodingConsumer.sync(task)", 0) >= 1
    assert errors.get("_ExplodingConsumer.flush", 0) >= 1
    # The first failure of each kind is logged with its traceback, to be fixed.
    logged = [r for r in caplog.records if r.name == "otel_asyncres" and "internal error" in r.getMessage()]
    assert logged and all(r.exc_info is not None for r in logged)


def test_debug_mode_reports_slow_callbacks_as_before(traced, caplog):
    """In debug mode the loop names every callback slower than
    ``slow_callback_duration``: the marks that bracket polls stand in the
    ready queue like Handles, but the loop skips them as cancelled (they do
    their work when it asks), so they are never reported (CPython's
    test_base_events.test_log_slow_callbacks checks the last report), and
    never formatted (a garbage collection during a mark once made the loop
    raise here, formatting a mark without ``_callback``)."""

    async def child() -> int:
        await asyncio.sleep(0)
        return 1

    async def main() -> list[int]:
        asyncio.get_running_loop().slow_callback_duration = 0
        return await asyncio.gather(child(), child())

    with caplog.at_level("WARNING", logger="asyncio"):
        assert asyncio.run(main(), debug=True) == [1, 1]
    slow = [rec.getMessage() for rec in caplog.records if rec.name == "asyncio"]
    assert not any("poll mark of task" in message for message in slow)
    assert any("test_debug_mode_reports_slow_callbacks_as_before" in message for message in slow)
    assert one(traced.spans(), "task test_debug_mode_reports_slow_callbacks_as_before.<locals>.main")


def test_a_chain_of_thousands_of_tasks_is_shown_and_printed_whole(traced):
    """Tasks nest without limit in asyncio (each awaits the next, on no
    Python stack). Showing, exporting and printing them are loops, not
    recursions: 3,000 nested tasks are all spans, each under its parent,
    with no internal error and a console view whose indentation stops
    growing past a depth it names."""

    async def nest(n: int) -> int:
        if n == 0:
            await asyncio.sleep(0)
            return 0
        return 1 + await asyncio.create_task(nest(n - 1))

    assert asyncio.run(nest(3000)) == 3000
    traced.flush()
    assert traced.session.handoff.errors == {}
    spans = [s for s in traced.exporter.get_finished_spans() if s.name.endswith("<locals>.nest")]
    assert len(spans) == 3001
    ids = {s.context.span_id for s in spans}
    assert sum(s.parent is None or s.parent.span_id not in ids for s in spans) == 1
    text = render(traced.exporter.get_finished_spans())
    assert "[depth 3000] task test_a_chain" in text
    assert max(len(line) for line in text.splitlines()) < 500


def test_a_gather_is_an_op_its_waker_events_name(traced):
    """A task parked in ``gather`` or ``wait`` waits in an op of its own
    (issue 13 item 5): its ``waker.clone`` and ``waker.wake`` name it, the
    joins on each task hang under it, and it ends as its future did."""

    async def leaf(n: int) -> int:
        await asyncio.sleep(0.001 * n)
        if n == 3:
            raise ValueError("three")
        return n

    async def main() -> None:
        assert await asyncio.gather(*(asyncio.create_task(leaf(n)) for n in (1, 2))) == [1, 2]
        with pytest.raises(ValueError):
            await asyncio.gather(asyncio.create_task(leaf(3)))
        done, _ = await asyncio.wait([asyncio.create_task(leaf(1))])
        assert len(done) == 1

    asyncio.run(main())
    traced.flush()
    spans = traced.exporter.get_finished_spans()
    root = next(s for s in spans if s.name.endswith("<locals>.main"))
    groups = sorted(
        (s for s in spans if s.name in ("async_op gather", "async_op wait")), key=lambda s: s.start_time
    )
    assert [(s.name, s.attributes[sc.ASYNC_OP_OUTCOME]) for s in groups] == [
        ("async_op gather", "ok"),
        ("async_op gather", "error"),
        ("async_op wait", "ok"),
    ]
    group_ids = [s.attributes[sc.ASYNC_OP_ID] for s in groups]
    for name in ("waker.clone", "waker.wake"):
        named = [e.attributes.get(sc.ASYNC_OP_ID) for e in events(root, name)]
        assert named == group_ids, name
    joins = [s for s in spans if s.name == "async_op Task.__await__"]
    assert len(joins) == 4
    by_span = {s.context.span_id: s for s in groups}
    assert all(j.parent is not None and j.parent.span_id in by_span for j in joins)
    assert all(g.parent is not None and g.parent.span_id == root.context.span_id for g in groups)


def test_a_gather_of_tasks_already_done_is_not_woken_by_its_own_task(traced):
    """Gathering tasks that are already done completes by callbacks the
    gathering task scheduled itself: no ``woken_by`` link from the op to its
    own task's span (Jaeger drops a parent reference that a link repeats,
    and showed such a gather as a root, on 3.10)."""

    async def quick() -> int:
        return 1

    async def main() -> list[int]:
        tasks = [asyncio.create_task(quick()) for _ in range(3)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # all done now
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [1, 1, 1]
    spans = traced.spans()
    # Parked in it on 3.10 and 3.11; 3.12's gather returns a done future.
    assert len([s for s in spans if s.name == "async_op gather"]) == (sys.version_info < (3, 12))
    for span in spans:
        if span.parent is not None:
            assert all(link.context.span_id != span.parent.span_id for link in span.links), span.name
