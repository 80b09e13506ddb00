"""Scale: the budget and folding, detail levels, windows, sampling, overload and
export faults.

Everything here runs real asyncio against the real SDK. Nothing asserts a
time: floors are checked with work that is far shorter or far longer than
them, budgets with counts, windows with event room, and the long-lived check by
looking at what was exported while the program was still running.
"""

from __future__ import annotations

import asyncio
import gc
import io
import itertools
import sys
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

import otel_asyncres
from conftest import by_name, events, make_traced, one
from otel_asyncres.bridge import semconv as sc
from otel_asyncres.config import load_settings
from otel_asyncres.export.queue import ExportQueue
from otel_asyncres.export.setup import ReportingExporter
from otel_asyncres.instrumentation.task_state import MUTED
from otel_asyncres.session import Session, activate
from otlp_receivers import GrpcReceiver, free_port


@pytest.fixture
def traced_with():
    """``traced_with(**options)``: a session with these options, closed after."""
    handles = []

    def make(**options):
        handles.append(make_traced(**options))
        return handles[-1]

    yield make
    otel_asyncres.uninstrument()


def names(spans):
    return sorted(s.name for s in spans)


# -- the budget, floors and folding -------------------------------------------------------


async def _brief():
    return 1


async def _long():
    await asyncio.sleep(0.05)


async def _failing():
    raise ValueError("quick failure")


def folded_waits(span):
    """(source, resource type) -> count, from a span's folded-wait arrays."""
    a = span.attributes
    keys = zip(a.get(sc.FOLDED_WAITS_SOURCES, ()), a.get(sc.FOLDED_WAITS_TYPES, ()), strict=True)
    return dict(zip(keys, a.get(sc.FOLDED_WAITS_COUNTS, ()), strict=True))


def test_short_tasks_are_folded_into_their_parent(traced_with):
    traced = traced_with(min_task_duration="20ms", min_wait_duration="20ms")

    async def main():
        await asyncio.gather(*(asyncio.create_task(_brief(), name=f"brief-{i}") for i in range(5)))
        await asyncio.create_task(_long(), name="long")
        with pytest.raises(ValueError):
            await asyncio.create_task(_failing(), name="failing")

    asyncio.run(main())
    spans = traced.spans()
    shown = {s.name for s in spans if s.name.startswith("task ")}
    assert "task long" in shown and "task failing" in shown  # long, or failed: shown
    assert not any(n.startswith("task brief") for n in shown)
    main_span = next(s for s in spans if s.name.endswith(".main"))
    assert main_span.attributes[sc.FOLDED_TASKS] == 5
    assert main_span.attributes[sc.FOLDED_TASKS_PREFIX + "ok"] == 5
    assert 0 <= main_span.attributes[sc.FOLDED_TASKS_LONGEST] < 0.02
    # The five short joins through gather are folded and counted too.
    assert folded_waits(main_span)[("Task.__await__", "asyncio.Task")] == 5


def test_a_shown_task_brings_its_ancestors(traced_with):
    traced = traced_with(min_task_duration="30ms")

    async def parent():
        # Ends at once; its child lives long: the child needs its parent's span.
        asyncio.get_running_loop().call_later(0, lambda: None)
        return asyncio.create_task(_long(), name="orphan-child")

    async def main():
        child = await asyncio.create_task(parent(), name="short-parent")
        await child

    asyncio.run(main())
    spans = traced.spans()
    child, parent_span = one(spans, "task orphan-child"), one(spans, "task short-parent")
    assert child.parent.span_id == parent_span.context.span_id


def test_waits_below_the_floor_are_folded_into_their_task_and_counted_on_the_resource(traced_with):
    traced = traced_with(min_wait_duration="50ms")

    async def holder(lock):
        async with lock:
            await asyncio.sleep(0)

    async def main():
        lock = asyncio.Lock()
        async with lock:
            waiter = asyncio.create_task(holder(lock), name="waiter")
            await asyncio.sleep(0)
        await waiter
        long_wait = asyncio.Event()
        asyncio.get_running_loop().call_later(0.08, long_wait.set)
        await long_wait.wait()

    asyncio.run(main())
    spans = traced.spans()
    assert not by_name(spans, "async_op Lock.acquire")  # a short wait: folded
    assert folded_waits(one(spans, "task waiter")) == {("Lock.acquire", "asyncio.Lock"): 1}
    lock_span = one(spans, "resource asyncio.Lock")
    assert lock_span.attributes[sc.RESOURCE_OPS] == 1  # every op on it, shown or folded
    assert lock_span.attributes[sc.RESOURCE_WAIT_DURATION] < 0.05
    assert by_name(spans, "async_op Event.wait")  # a long one: shown


def test_a_cancelled_wait_is_shown_however_short(traced_with):
    traced = traced_with(min_wait_duration="1s")

    async def waiter(event):
        await event.wait()

    async def main():
        task = asyncio.create_task(waiter(asyncio.Event()), name="waiter")
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    op = one(traced.spans(), "async_op Event.wait")
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"


def test_a_folded_waker_is_named_and_marked_folded(traced_with):
    """The task that woke a shown wait was folded before the wait ended: the
    wait names it, says what it was and that it was folded."""
    traced = traced_with(min_task_duration="1s")

    async def setter(event):
        event.set()

    async def main():
        event = asyncio.Event()
        waiting = asyncio.create_task(event.wait())
        await asyncio.sleep(0)
        await asyncio.create_task(setter(event), name="setter")
        await waiting

    asyncio.run(main())
    spans = traced.spans()
    assert by_name(spans, "task setter") == []
    op = one(spans, "async_op Event.wait")
    assert op.attributes[sc.WAKER_TASK_NAME] == "setter"
    assert op.attributes[sc.WAKER_TASK_FOLDED] is True
    assert [link for link in op.links if link.attributes[sc.LINK_RELATION] == "woken_by"] == []


def test_trivial_tasks_queued_long_are_folded_with_their_joins(traced_with):
    """Tasks that do next to nothing but wait long to be run, and tasks that
    wait long only for them, are not worth a span: only the root is shown,
    and every one of them is counted on it."""
    traced = traced_with(min_task_duration="150ms", min_wait_duration="150ms", op_poll_spans=None)

    async def nothing():
        return None

    async def gatherer():
        await asyncio.gather(*(nothing() for _ in range(50)))

    async def main():
        gatherers = [asyncio.create_task(gatherer()) for _ in range(2)]
        await asyncio.sleep(0)  # they spawn their children and wait for them
        time.sleep(0.3)  # the loop is blocked: all of them wait to be run
        await asyncio.gather(*gatherers)

    asyncio.run(main())
    spans = traced.spans()
    (main_span,) = spans
    assert main_span.name.endswith(".main")
    assert main_span.attributes[sc.FOLDED_TASKS] == 102  # its children, and theirs
    assert folded_waits(main_span) == {("Task.__await__", "asyncio.Task"): 102, ("gather", "asyncio.Task"): 3}
    assert float(main_span.attributes[sc.TASK_BUSY]) >= 0.3


def test_waits_for_tasks_worth_a_span_are_shown(traced_with):
    traced = traced_with(min_task_duration="1ms", min_wait_duration="1ms", op_poll_spans=None)

    async def sleeper():
        await asyncio.sleep(0.01)

    async def main():
        await asyncio.gather(*(asyncio.create_task(sleeper(), name=f"s{i}") for i in range(3)))

    asyncio.run(main())
    spans = traced.spans()
    sleepers = [one(spans, f"task s{i}") for i in range(3)]
    joins = by_name(spans, "async_op Task.__await__")
    assert len(joins) == 3
    woken_by = {
        link.context.span_id
        for op in joins
        for link in op.links
        if link.attributes[sc.LINK_RELATION] == "woken_by"
    }
    assert woken_by == {s.context.span_id for s in sleepers}
    # The awaited task is the op's resource: linked as such, no span of its own.
    resources = {
        link.context.span_id
        for op in joins
        for link in op.links
        if link.attributes[sc.LINK_RELATION] == "resource"
    }
    assert resources == woken_by
    assert not by_name(spans, "resource asyncio.Task")
    assert {op.attributes[sc.AWAITED_TASK_ID] for op in joins} == {s.attributes[sc.TASK_ID] for s in sleepers}
    # By default polls are counted (gather's ops are waited on from a distance:
    # one poll); the first and the ready one are the span's start and end, not
    # events; poll spans only on request.
    assert not by_name(spans, "poll")
    assert all(events(op, "poll_op") == [] and op.attributes[sc.ASYNC_OP_POLLS] == 1 for op in joins)


def test_a_poll_that_leaves_an_op_pending_is_an_event_by_default(traced_with):
    """A wake that does not complete the op (a condition notified while its
    predicate is still false) is the one poll worth an event when polls are
    only counted."""
    traced = traced_with(op_poll_spans=None)

    async def waiter(cond, box):
        async with cond:
            await cond.wait_for(lambda: box)

    async def main():
        cond, box = asyncio.Condition(), []
        w = asyncio.create_task(waiter(cond, box), name="waiter")
        await asyncio.sleep(0)
        async with cond:
            cond.notify_all()  # woken with the predicate still false: it waits again
        for _ in range(5):
            await asyncio.sleep(0)
        async with cond:
            box.append(1)
            cond.notify_all()
        await w

    asyncio.run(main())
    (op,) = by_name(traced.spans(), "async_op Condition.wait_for")
    assert op.attributes[sc.ASYNC_OP_POLLS] == 3
    (event,) = events(op, "poll_op")
    assert event.attributes["is_ready"] is False
    assert op.start_time < event.timestamp < op.end_time


def _many_short_and_a_few_long(short: int, long: int):
    async def quick():
        await asyncio.sleep(0)

    async def slow():
        await asyncio.sleep(0.02)

    async def main():
        await asyncio.gather(
            *(asyncio.create_task(quick(), name="quick") for _ in range(short)),
            *(asyncio.create_task(slow(), name="slow") for _ in range(long)),
        )

    return main


def test_within_the_budget_everything_is_shown():
    """A small program is shown whole by default: every task, wait and resource."""
    handle = make_traced(budget=None)  # the default budget
    try:
        asyncio.run(_many_short_and_a_few_long(30, 3)())
        spans = handle.spans()
    finally:
        otel_asyncres.uninstrument()
    assert len(by_name(spans, "task quick")) == 30 and len(by_name(spans, "task slow")) == 3
    main_span = next(s for s in spans if s.name.endswith(".main"))
    assert sc.FOLDED_TASKS not in main_span.attributes


def test_past_the_budget_the_shortest_are_folded_and_every_one_counted():
    """With a budget of a few spans, the long tasks are kept and the short
    ones folded into their parent, counted there: nothing vanishes."""
    handle = make_traced(budget="100")  # 100 spans and events a second
    try:
        asyncio.run(_many_short_and_a_few_long(400, 3)())
        spans = handle.spans()
    finally:
        otel_asyncres.uninstrument()
    quick, slow = by_name(spans, "task quick"), by_name(spans, "task slow")
    main_span = next(s for s in spans if s.name.endswith(".main"))
    assert len(slow) == 3, "the longest are kept"
    assert len(quick) < 400
    assert len(quick) + main_span.attributes[sc.FOLDED_TASKS] == 400
    assert main_span.attributes[sc.FOLDED_TASKS_PREFIX + "ok"] == main_span.attributes[sc.FOLDED_TASKS]


def test_long_lived_tasks_are_shown_within_the_budget_too():
    """Tasks that live past a second are shown while they live, but through
    the budget: a thousand of them alive at once are not all made spans."""
    handle = make_traced(budget="50")

    async def sleeper():
        await asyncio.sleep(1.4)

    async def main():
        await asyncio.gather(*(asyncio.create_task(sleeper(), name="sleeper") for _ in range(1000)))

    try:
        asyncio.run(main())
        spans = handle.spans()
    finally:
        otel_asyncres.uninstrument()
    shown = by_name(spans, "task sleeper")
    main_span = next(s for s in spans if s.name.endswith(".main"))
    assert 0 < len(shown) < 500
    assert len(shown) + main_span.attributes[sc.FOLDED_TASKS] == 1000


def test_every_id_in_a_trace_names_a_span_of_it_or_says_it_was_folded():
    """Under a budget that folds most of a program, each task id an event or
    an attribute names is a span of the same trace, or comes with the task's
    name and a mark that it was folded."""
    handle = make_traced(budget="30")

    async def worker(lock, queue, n):
        async with lock:
            await asyncio.sleep(0)
        await queue.put(n)

    async def main():
        lock, queue = asyncio.Lock(), asyncio.Queue()
        await asyncio.gather(*(asyncio.create_task(worker(lock, queue, n), name=f"w{n}") for n in range(60)))
        return sorted([queue.get_nowait() for _ in range(60)])

    try:
        assert asyncio.run(main()) == list(range(60))
        spans = handle.spans()
    finally:
        otel_asyncres.uninstrument()
    tasks = {(s.context.trace_id, s.attributes[sc.TASK_ID]) for s in spans if s.name.startswith("task ")}
    checked = 0
    for span in spans:
        named = [(span.attributes, "")] + [(e.attributes, e.name) for e in span.events]
        for attributes, where in named:
            for id_key, name_key, folded_key in (
                (sc.WAKER_TASK_ID, sc.WAKER_TASK_NAME, sc.WAKER_TASK_FOLDED),
                (sc.AWAITED_TASK_ID, sc.AWAITED_TASK_NAME, sc.AWAITED_TASK_FOLDED),
            ):
                if id_key not in attributes:
                    continue
                checked += 1
                resolves = (span.context.trace_id, attributes[id_key]) in tasks
                assert resolves or (attributes.get(folded_key) is True and attributes.get(name_key)), (
                    span.name,
                    where,
                    dict(attributes),
                )
    assert checked > 0


# -- detail levels ------------------------------------------------------------------------


def _contended_program():
    async def holder(lock):
        async with lock:
            await asyncio.sleep(0.001)

    async def main():
        lock = asyncio.Lock()
        await asyncio.gather(*(asyncio.create_task(holder(lock), name=f"h{i}") for i in range(3)))

    asyncio.run(main())


def test_detail_tasks_has_no_resources_or_ops(traced_with):
    traced = traced_with(detail="tasks")
    _contended_program()
    spans = traced.spans()
    assert spans and all(s.name.startswith("task ") for s in spans)


def test_detail_all_adds_a_poll_span_per_task_poll(traced_with):
    traced = traced_with(detail="all", min_task_duration="1s", min_wait_duration="1s")
    _contended_program()
    spans = traced.spans()
    h0 = one(spans, "task h0")
    polls = [s for s in spans if s.name == "poll" and s.parent.span_id == h0.context.span_id]
    assert len(polls) == h0.attributes[sc.TASK_POLLS]
    assert all(p.attributes[sc.TASK_ID] == h0.attributes[sc.TASK_ID] for p in polls)


# -- windows ---------------------------------------------------------------------------------


def test_a_long_lived_task_is_exported_in_windows_losing_no_event(traced_with):
    traced = traced_with(window_events=10, window_duration="1h")

    async def chatty():
        for _ in range(30):
            await asyncio.sleep(0)  # each a waker.wake event

    async def main():
        await asyncio.create_task(chatty(), name="chatty")

    asyncio.run(main())
    windows = sorted(by_name(traced.spans(), "task chatty"), key=lambda s: s.start_time)
    assert len(windows) >= 3
    assert [w.attributes[sc.WINDOW_INDEX] for w in windows] == list(range(len(windows)))
    assert [w.attributes[sc.WINDOW_LAST] for w in windows] == [False] * (len(windows) - 1) + [True]
    assert len({w.attributes[sc.TASK_ID] for w in windows}) == 1
    for before, after in itertools.pairwise(windows):
        (link,) = after.links
        assert link.context.span_id == before.context.span_id
        assert link.attributes[sc.LINK_RELATION] == "previous_window"
        assert before.end_time == after.start_time
    assert all(w.dropped_events == 0 and len(w.events) <= 10 for w in windows)
    wakes = sum(len(events(w, "waker.wake")) for w in windows)
    assert wakes == 30
    assert windows[-1].attributes[sc.TASK_WAKES] == 30


def test_windows_hold_no_more_events_than_the_provider_keeps():
    """A provider keeping fewer events per span than ``window_events`` (here
    OTEL_SPAN_EVENT_COUNT_LIMIT=8's SpanLimits): the windows are that small,
    so the SDK drops nothing."""
    provider = TracerProvider(span_limits=SpanLimits(max_events=8))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _session_with(provider, window_duration="1h")

    async def chatty():
        for _ in range(30):
            await asyncio.sleep(0)

    async def main():
        await asyncio.create_task(chatty(), name="chatty")

    try:
        asyncio.run(main())
        otel_asyncres.flush()
    finally:
        otel_asyncres.uninstrument()
    windows = by_name(exporter.get_finished_spans(), "task chatty")
    assert len(windows) >= 4
    assert all(w.dropped_events == 0 and len(w.events) <= 8 for w in windows)
    assert sum(len(events(w, "waker.wake")) for w in windows) == 30


def test_a_long_lived_task_shows_up_while_it_runs(traced_with):
    traced = traced_with(window_duration="50ms")
    seen = []

    async def forever(stop):
        while not stop.is_set():
            await asyncio.sleep(0.01)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(forever(stop), name="server-loop")
        deadline = time.monotonic() + 20  # generous: the machine is shared
        while time.monotonic() < deadline and not seen:
            await asyncio.sleep(0.05)
            seen.extend(s for s in traced.exporter.get_finished_spans() if s.name == "task server-loop")
        stop.set()
        await task

    asyncio.run(main())
    assert seen, "no window of the running task was exported while it ran"
    assert seen[0].attributes[sc.WINDOW_INDEX] == 0 and seen[0].attributes[sc.WINDOW_LAST] is False


# -- sampling ----------------------------------------------------------------------------------


def _session_with(provider, **options):
    session = Session(load_settings({"budget": "off", **options}), provider)
    activate(session)
    return session


def _tree():
    async def leaf(lock):
        async with lock:
            await asyncio.sleep(0)

    async def root():
        lock = asyncio.Lock()
        await asyncio.gather(*(asyncio.create_task(leaf(lock)) for _ in range(4)))

    return root


def test_sampled_out_traces_record_nothing():
    provider = TracerProvider(sampler=ALWAYS_OFF)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    session = _session_with(provider)
    try:
        asyncio.run(_tree()())
        session.handoff.flush()
        pending = session.handoff.pending()
    finally:
        otel_asyncres.uninstrument()
    assert exporter.get_finished_spans() == ()
    assert pending == 0
    assert session.instrumentation.tasks.live_tasks() == 0
    assert session.instrumentation.resources.live_count() == 0


def test_a_sampled_out_tree_keeps_nothing_per_task():
    """A sampled-out root's context is marked; its descendants copy it, so
    each hook tells them by one lookup in it: while they live, the
    instrumentation holds nothing for any of them, and they behave as before."""
    session = _session_with(TracerProvider(sampler=ALWAYS_OFF))
    tracker = session.instrumentation.tasks
    seen: dict[str, int] = {}

    async def leaf(event: asyncio.Event, n: int) -> int:
        await event.wait()
        return n

    async def root() -> list[int]:
        event = asyncio.Event()
        tasks = [asyncio.create_task(leaf(event, n)) for n in range(50)]
        await asyncio.sleep(0)  # every leaf is parked now
        seen["live"] = tracker.live_tasks()
        seen["resources"] = session.instrumentation.resources.live_count()
        seen["muted"] = sum(tracker.state_of(t) is None and tracker.current() is MUTED for t in tasks)
        event.set()
        return await asyncio.gather(*tasks)

    try:
        assert asyncio.run(root()) == list(range(50))
    finally:
        otel_asyncres.uninstrument()
    assert seen == {"live": 0, "resources": 0, "muted": 50}


def test_resources_in_one_state_share_it_and_tables_give_back_their_room():
    """Memory per live entity (issue 11): held Locks in the same state share
    one state dict (their initial state is that dict, not a copy), and after
    a burst of tasks and Locks is gone, the tables of live ones shrink at the
    next sweep instead of keeping room for the burst."""
    session = _session_with(TracerProvider())
    tracker, registry = session.instrumentation.tasks, session.instrumentation.resources
    seen: dict[str, object] = {}

    async def hold(lock: asyncio.Lock, event: asyncio.Event) -> None:
        async with lock:
            await event.wait()

    async def main() -> None:
        event = asyncio.Event()
        locks = [asyncio.Lock() for _ in range(3000)]
        tasks = [asyncio.create_task(hold(lock, event)) for lock in locks]
        await asyncio.sleep(0)
        states = [registry.get(lock) for lock in locks]
        seen["held"] = {id(rs.last) for rs in states if rs is not None}
        seen["initial"] = {id(rs.initial) for rs in states if rs is not None}
        seen["tables"] = sys.getsizeof(tracker._states) + sys.getsizeof(registry._states)
        event.set()
        await asyncio.gather(*tasks)
        del locks, tasks, states
        gc.collect()
        await asyncio.sleep(0)
        tracker.sweep(time.time_ns())
        seen["after"] = sys.getsizeof(tracker._states) + sys.getsizeof(registry._states)
        seen["live"] = tracker.live_tasks(), registry.live_count()

    try:
        asyncio.run(main())
    finally:
        otel_asyncres.uninstrument()
    assert len(seen["held"]) == 1  # type: ignore[arg-type]
    assert len(seen["initial"]) == 1  # type: ignore[arg-type]
    assert seen["live"] == (1, 1)  # main() and its Event
    assert seen["after"] < seen["tables"] / 10  # type: ignore[operator]


def test_a_shown_resource_past_the_budget_counts_its_state_updates_without_making_them():
    """Once a resource is a span and the budget refuses its events, each
    state update is counted on it (events folded) and no event is made: a
    long-lived Queue under load costs a count per change, not an event."""
    session = _session_with(TracerProvider(), budget=1000)
    registry, policy = session.instrumentation.resources, session.policy
    seen: dict[str, int] = {}

    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        rs = registry.get(queue)
        assert rs is not None
        policy.show(rs)
        kept = len(rs.events or ())
        policy.budget.tokens = 0  # spent: what follows is past the budget
        for n in range(10):
            queue.put_nowait(n)  # size +1, unfinished_tasks +1
        for _ in range(10):
            queue.get_nowait()  # size -1
        seen["made"] = len(rs.events or ()) - kept
        seen["counted"] = rs.events_folded

    try:
        asyncio.run(main())
    finally:
        otel_asyncres.uninstrument()
    assert seen == {"made": 0, "counted": 30}


class _DropOneRoot(Sampler):
    """Keeps every trace but the one whose root task runs ``dropped_root``."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None):
        decision = Decision.DROP if name.endswith("dropped_root") else Decision.RECORD_AND_SAMPLE
        return SamplingResult(decision)

    def get_description(self) -> str:
        return "DropOneRoot"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task factories are new in 3.12")
def test_eager_tasks_spawned_by_a_sampled_out_task_are_muted_with_it():
    """Spawned eagerly in a later step of a sampled-out task (a step polled
    untouched), a task is still its spawner's: muted, not a new trace."""
    provider = TracerProvider(sampler=_DropOneRoot())
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    session = _session_with(provider)

    async def child(n: int) -> int:
        await asyncio.sleep(0)
        return n

    async def dropped_root() -> list[int]:
        await asyncio.sleep(0)  # from here on, a step that is not the first
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        return await asyncio.gather(*(asyncio.create_task(child(n)) for n in range(3)))

    try:
        assert asyncio.run(dropped_root()) == [0, 1, 2]
        session.handoff.flush()
        gc.collect()
        left = session.instrumentation.tasks.live_tasks()
    finally:
        otel_asyncres.uninstrument()
    assert [s.name for s in exporter.get_finished_spans()] == []
    assert left == 0


def test_ratio_sampling_keeps_whole_traces():
    provider = TracerProvider(sampler=TraceIdRatioBased(0.5))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _session_with(provider)
    try:
        for _ in range(20):
            asyncio.run(_tree()())
    finally:
        otel_asyncres.uninstrument()
    spans = exporter.get_finished_spans()
    traces = {s.context.trace_id for s in spans}
    assert 0 < len(traces) < 20  # some traces kept, some dropped
    for trace_id in traces:  # and each kept trace is whole: a root, four leaves
        members = [s for s in spans if s.context.trace_id == trace_id]
        tasks = [s for s in members if s.name.startswith("task ")]
        assert len(tasks) == 5, names(members)


def test_children_of_a_sampled_out_application_span_are_not_recorded():
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    session = _session_with(provider)
    tracer = trace.get_tracer("app", tracer_provider=provider)

    async def main():
        with tracer.start_as_current_span("request"):
            await asyncio.create_task(_tree()())

    try:
        asyncio.run(main())
        session.handoff.flush()
    finally:
        otel_asyncres.uninstrument()
    assert exporter.get_finished_spans() == ()


# -- overload -------------------------------------------------------------------------------------


def test_a_full_hand_off_folds_and_reports_the_drops_while_running():
    """When the bridge cannot keep up, entities about to be shown are folded
    instead, counted by kind, and said on the next span that ends."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    session = Session(load_settings({"budget": "off"}), provider, meter_provider=MeterProvider([reader]))
    activate(session)
    session.handoff.capacity = 5  # the drain thread wakes every 200 ms

    async def main():
        await asyncio.gather(*(asyncio.create_task(_brief(), name="brief") for _ in range(300)))

    try:
        asyncio.run(main())
        otel_asyncres.flush()
        dropped = dict(session.handoff.dropped)
        data = reader.get_metrics_data()
    finally:
        otel_asyncres.uninstrument()
    in_metrics = {
        point.attributes["otel_asyncres.entity.kind"]: point.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "otel_asyncres.handoff.dropped"
        for point in m.data.data_points
    }
    assert in_metrics == dropped, "the drops are in the metrics too"
    spans = exporter.get_finished_spans()
    main_span = next(s for s in spans if s.name.endswith(".main"))
    shown = len(by_name(spans, "task brief"))
    assert dropped.get("task", 0) > 0
    assert shown + main_span.attributes.get(sc.FOLDED_TASKS, 0) == 300  # folded, not lost
    reported = sum(s.attributes.get(sc.DROPPED_PREFIX + "task", 0) for s in spans)
    assert reported == dropped["task"]


def test_flush_prints_what_was_recorded_so_far_with_the_console_exporter():
    """``flush()`` with the console view prints the spans ended so far, each
    once; the rest comes at the end."""
    stream = io.StringIO()
    session = Session(load_settings({"exporter": "console"}, environ={}), console_stream=stream)
    activate(session)
    printed: list[str] = []

    async def early():
        await asyncio.sleep(0)

    async def main():
        await asyncio.create_task(early(), name="early")
        otel_asyncres.flush()
        printed.append(stream.getvalue())
        await asyncio.create_task(early(), name="late")

    try:
        asyncio.run(main())
    finally:
        otel_asyncres.uninstrument()
    (at_flush,) = printed
    assert "task early" in at_flush and "task late" not in at_flush
    rest = stream.getvalue()[len(at_flush) :]
    assert "task late" in rest and "task early" not in rest


# -- export faults ------------------------------------------------------------------------------------


class _Failing:
    """An exporter that answers failure, counting calls."""

    def __init__(self):
        self.calls = 0

    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.calls += 1
        return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis=30000):
        return True

    def shutdown(self):
        pass


def test_export_queue_bounded_and_drops_counted():
    reporter = ReportingExporter(_Failing(), "nowhere")
    queue = ExportQueue(reporter, max_queue=10, batch=1000, delay=3600)
    provider = TracerProvider()
    provider.add_span_processor(queue)
    tracer = provider.get_tracer("t")
    for i in range(25):
        tracer.start_span(f"s{i}").end()
    assert queue.dropped == 15  # full queue: counted, never blocking
    assert queue.dropped_since_last_asked() == 15 and queue.dropped_since_last_asked() == 0
    queue.shutdown()
    assert reporter.failed == 10
    line = reporter.summary(queue.dropped)
    assert line is not None and "25 spans could not be exported to nowhere" in line


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_collector_down_costs_the_program_nothing_but_a_report(protocol, capsys):
    settings = load_settings(
        {"exporter": "otlp", "endpoint": f"http://127.0.0.1:{free_port()}", "protocol": protocol},
        environ={"OTEL_EXPORTER_OTLP_TIMEOUT": "1"},
    )
    session = Session(settings)
    activate(session)

    async def main():
        await asyncio.gather(*(asyncio.create_task(_long(), name=f"t{i}") for i in range(3)))
        return "done"

    try:
        assert asyncio.run(main()) == "done"
    finally:
        otel_asyncres.uninstrument()
    err = capsys.readouterr().err
    assert "spans could not be exported to" in err
    assert "Transient error" not in err and "Traceback" not in err  # one line, not the exporter's noise


def test_collector_refusing_then_accepting():
    with GrpcReceiver() as receiver:
        from grpc import StatusCode

        receiver.fail_with = StatusCode.UNAVAILABLE
        settings = load_settings(
            {"exporter": "otlp", "endpoint": receiver.endpoint, "protocol": "grpc", "min_task_duration": 0},
            environ={"OTEL_EXPORTER_OTLP_TIMEOUT": "1"},
        )
        session = Session(settings)
        activate(session)
        try:
            asyncio.run(_tree()())
            session.flush(3000)
            receiver.fail_with = None
            asyncio.run(_tree()())
        finally:
            otel_asyncres.uninstrument()
        assert receiver.rejected > 0
        assert receiver.span_count() > 0
    reporter = session.export.reporters[0]
    assert reporter.failed > 0 and reporter.exported > 0
