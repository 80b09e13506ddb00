"""Diagnostics: each lint fires on a program made to trigger it, and only there.

Every program here is real asyncio, run instrumented with the real SDK and an
in-memory exporter; a lint is checked where a user sees it: an event on the
task's span (named after the lint, with ``asyncio.lint.*`` attributes), the
span's status for errors, the ``otel_asyncres`` logger, and the
``on_deadlock`` callback. The programs made to deadlock end because their
``main`` stops waiting for the deadlocked tasks and cancels them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
import time

import pytest
from opentelemetry.trace import StatusCode

import otel_asyncres
from conftest import events, make_traced, one
from otel_asyncres import Deadlock
from otel_asyncres.bridge import semconv as sc
from otel_asyncres.config import ConfigError, load_settings

HERE = __file__


@pytest.fixture
def diagnosed():
    """``diagnosed(session_arguments=None, **options)``: a session, closed after."""

    def make(session_arguments=None, **options):
        return make_traced(session_arguments, **options)

    yield make
    otel_asyncres.uninstrument()


def lint(span, kind):
    """The attributes of the span's ``kind`` events, ``asyncio.lint.`` removed."""
    found = []
    for event in events(span, kind):
        attrs = dict(event.attributes)
        found.append({k.removeprefix(sc.LINT_PREFIX): v for k, v in attrs.items()})
    return found


def lints(spans):
    """Every lint event in the trace: (kind, span name)."""
    kinds = ("long_poll", "self_wakes", "lost_waker", "long_wait", "deadlock")
    return sorted((e.name, s.name) for s in spans for e in s.events if e.name in kinds)


def line_of(text):
    """The line of this file that contains ``text`` (a marker comment)."""
    with open(HERE) as f:
        for number, line in enumerate(f, 1):
            if text in line and "line_of" not in line:
                return number
    raise AssertionError(text)


# -- long polls ---------------------------------------------------------------------------


def test_a_long_poll_names_where_it_resumed_and_yielded(diagnosed, run):
    traced = diagnosed()

    async def blocker():
        await asyncio.sleep(0.001)  # resumed here
        time.sleep(0.15)
        await asyncio.sleep(0.001)  # yielded here

    async def main():
        await asyncio.create_task(blocker(), name="blocker")

    run(main)
    spans = traced.spans()
    task = one(spans, "task blocker")
    (found,) = lint(task, "long_poll")
    assert found["severity"] == "warning"
    assert found["duration"] >= 0.15 and found["threshold"] == pytest.approx(0.1)
    assert found["started_at"].startswith(f"{HERE}:{line_of('# resumed here')} ")
    assert found["yielded_at"].startswith(f"{HERE}:{line_of('# yielded here')} ")
    assert "blocked the event loop" in found["message"]
    assert task.status.status_code is not StatusCode.ERROR  # a warning
    assert lints(spans) == [("long_poll", "task blocker")]


def test_a_long_first_poll_starts_at_the_coroutine_and_may_return(diagnosed):
    traced = diagnosed(long_poll_threshold="50ms")

    async def busy():  # the coroutine starts here
        time.sleep(0.08)

    async def main():
        await asyncio.create_task(busy(), name="busy")

    asyncio.run(main())
    (found,) = lint(one(traced.spans(), "task busy"), "long_poll")
    assert found["started_at"].startswith(f"{HERE}:{line_of('# the coroutine starts here')} ")
    assert "yielded_at" not in found and found["message"].endswith("returned")


EAGER_LONG_POLL = """
import asyncio, time

async def busy():
    time.sleep(0.15)  # a long first step, run inside create_task, done there

async def main():
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    task = asyncio.create_task(busy(), name="busy")
    print("done eagerly:", task.done())

asyncio.run(main())
"""


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task factory is 3.12+")
def test_a_long_eager_first_step_of_a_task_done_eagerly(tmp_path):
    """Reported, and nothing asked of the finished task that CPython 3.12.0
    and 3.12.1 cannot answer (their get_coro() crashes for such a task), so
    in a child process: a crash must fail this test, not the suite."""
    program = tmp_path / "eager.py"
    program.write_text(EAGER_LONG_POLL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-m", "otel_asyncres", "run", str(program)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done eagerly: True\n"
    summary = result.stderr[result.stderr.index("diagnostics: ") :]
    assert "long_poll  task busy #" in summary and f"started at {program}:4 (busy)" in summary


@pytest.mark.parametrize("threshold", ["1s", "off"])
def test_long_polls_below_the_threshold_or_off_are_not_reported(diagnosed, threshold):
    traced = diagnosed(long_poll_threshold=threshold)

    async def main():
        time.sleep(0.15)

    asyncio.run(main())
    assert lints(traced.spans()) == []


# -- self-wakes -------------------------------------------------------------------------------


def test_a_task_that_mostly_wakes_itself(diagnosed):
    traced = diagnosed()

    async def spinner(n):
        for _ in range(n):
            await asyncio.sleep(0)

    async def half(event):
        for _ in range(30):
            await asyncio.sleep(0)
            await event.wait()
            event.clear()

    async def setter(event):
        for _ in range(30):
            await asyncio.sleep(0.001)
            event.set()

    async def main():
        event = asyncio.Event()
        await asyncio.gather(
            asyncio.create_task(spinner(60), name="spinner"),
            asyncio.create_task(spinner(5), name="few"),  # too few wakes to judge
            asyncio.create_task(half(event), name="half"),  # half its wakes: not more than half
            asyncio.create_task(setter(event), name="setter"),
        )

    asyncio.run(main())
    spans = traced.spans()
    (found,) = lint(one(spans, "task spinner"), "self_wakes")
    # Judged as it goes: told at its 50th wake, all of them its own so far.
    assert (found["wakes"], found["self_wakes"], found["threshold"]) == (50, 50, 0.5)
    assert lints(spans) == [("self_wakes", "task spinner")]


# -- lost wakers --------------------------------------------------------------------------------


def test_a_wait_nobody_can_complete_is_a_lost_waker_while_running(diagnosed):
    traced = diagnosed()
    traced.session.instrumentation.lost_wakers.after_ns = 50_000_000

    async def forgotten():
        await asyncio.get_running_loop().create_future()  # nobody else has it

    async def held(future):
        return await future

    async def main():
        future = asyncio.get_running_loop().create_future()
        lost = asyncio.create_task(forgotten(), name="forgotten")
        waiting = asyncio.create_task(held(future), name="held")
        await asyncio.sleep(0.6)  # the recorder's ticks look meanwhile
        future.set_result(1)
        await waiting
        lost.cancel()

    asyncio.run(main())
    spans = traced.spans()
    task = one(spans, "task forgotten")
    (found,) = lint(task, "lost_waker")
    assert found["awaits"] == "asyncio.Future" and found["severity"] == "error"
    assert found["awaited_at"].startswith(f"{HERE}:{line_of('# nobody else has it')} ")
    assert task.status.status_code is StatusCode.ERROR and task.status.description.startswith("lost_waker")
    assert lints(spans) == [("lost_waker", "task forgotten")]


def test_waits_on_primitives_only_the_task_holds_are_lost_at_shutdown(diagnosed):
    """asyncio.run cancels what is left when main returns: the waits that
    nothing could have ended are told first."""
    traced = diagnosed()

    async def alone(kind):
        if kind == "event":
            await asyncio.Event().wait()
        elif kind == "queue":
            await asyncio.Queue().get()
        else:
            lock = asyncio.Lock()
            await lock.acquire()
            await lock.acquire()  # the task holds it itself: a lost waker, and a deadlock

    async def shared(event, queue):
        await event.wait()
        await queue.get()

    kept = []  # outlives main: whoever holds it could still set the event

    async def main():
        event, queue = asyncio.Event(), asyncio.Queue()
        kept.extend((event, queue))
        for kind in ("event", "queue", "lock"):
            asyncio.create_task(alone(kind), name=f"alone-{kind}")
        asyncio.create_task(shared(event, queue), name="shared")
        await asyncio.sleep(0.05)

    gc.disable()  # a task nothing references may be collected first: that path has its own test
    try:
        asyncio.run(main())
    finally:
        gc.enable()
    spans = traced.spans()
    assert [
        lint(one(spans, f"task alone-{kind}"), "lost_waker")[0]["awaits"] for kind in ("event", "queue")
    ] == [
        "asyncio.Event",
        "asyncio.Queue",
    ]
    assert lints(spans) == [
        ("deadlock", "task alone-lock"),
        ("lost_waker", "task alone-event"),
        ("lost_waker", "task alone-lock"),
        ("lost_waker", "task alone-queue"),
    ]


def test_a_task_destroyed_while_pending_lost_its_waker(diagnosed):
    traced = diagnosed()

    async def forever():
        await asyncio.Event().wait()

    loop = asyncio.new_event_loop()
    task = loop.create_task(forever(), name="forever")
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    del task
    gc.collect()  # "Task was destroyed but it is pending!"
    spans = traced.spans()
    (found,) = lint(one(spans, "task forever"), "lost_waker")
    assert "destroyed while pending" in found["message"]


# -- long waits ------------------------------------------------------------------------------------


def test_a_long_wait_is_reported_while_it_waits_and_sleeps_are_not(diagnosed):
    traced = diagnosed(long_wait_threshold="300ms")

    async def waiter(event):
        await event.wait()  # the long wait

    async def main():
        event = asyncio.Event()
        waiting = asyncio.create_task(waiter(event), name="waiter")
        await asyncio.sleep(0.7)  # a sleep is no wait for something
        # Seen by the loop's sweep while still waiting, not only when it ended.
        assert traced.session.instrumentation.lints.counts == {"long_wait": 1}
        event.set()
        await waiting

    asyncio.run(main())
    spans = traced.spans()
    (found,) = lint(one(spans, "task waiter"), "long_wait")
    assert found["source"] == "Event.wait" and found["threshold"] == pytest.approx(0.3)
    assert found["awaited_at"].startswith(f"{HERE}:{line_of('# the long wait')} ")
    assert "so far" in found["message"]
    assert lints(spans) == [("long_wait", "task waiter")]


# -- deadlocks ----------------------------------------------------------------------------------------


async def _wait_then_cancel(*tasks):
    """Give the tasks time to deadlock, then end them: the program finishes."""
    await asyncio.wait(tasks, timeout=0.3)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_a_lock_order_inversion_is_a_deadlock(diagnosed, run):
    found: list[Deadlock] = []
    traced = diagnosed({"on_deadlock": found.append})

    async def worker(first, second):
        async with first:
            await asyncio.sleep(0.01)
            async with second:  # the inverted acquire
                pass

    async def main():
        a, b = asyncio.Lock(), asyncio.Lock()
        one_ = asyncio.create_task(worker(a, b), name="ab")
        two = asyncio.create_task(worker(b, a), name="ba")
        await _wait_then_cancel(one_, two)
        return [t.cancelled() for t in (one_, two)]

    assert run(main) == [True, True]
    (deadlock,) = found
    assert sorted(t.name for t in deadlock.tasks) == ["ab", "ba"]
    assert {t.source for t in deadlock.tasks} == {"Lock.acquire"}
    assert all(
        t.location is not None and t.location.line == line_of("# the inverted acquire")
        for t in deadlock.tasks
    )
    by_id = {t.task_id: t for t in deadlock.tasks}
    assert {t.waits_for for t in deadlock.tasks} == set(by_id)  # each waits for the other
    spans = traced.spans()
    for name in ("task ab", "task ba"):
        span = one(spans, name)
        (event,) = lint(span, "deadlock")
        assert event["cycle"] == deadlock.describe() and event["severity"] == "error"
        assert list(event["tasks"]) == [t.task_id for t in deadlock.tasks]  # ints, not a string
        shown = {s.attributes.get(sc.RESOURCE_ID) for s in spans if s.name == "resource asyncio.Lock"}
        assert event["resource_id"] in shown, "the lock named is a span of the trace"
        assert span.status.status_code is StatusCode.ERROR
    assert lints(spans) == [("deadlock", "task ab"), ("deadlock", "task ba")]


def test_tasks_awaiting_each_other_are_a_deadlock(diagnosed):
    found: list[Deadlock] = []
    diagnosed({"on_deadlock": found.append})
    tasks = {}

    async def awaiting(other):
        await asyncio.sleep(0)
        await tasks[other]

    async def main():
        tasks["a"] = asyncio.create_task(awaiting("b"), name="a")
        tasks["b"] = asyncio.create_task(awaiting("a"), name="b")
        await asyncio.sleep(0.05)

    # Not asyncio.run: cancelling either task would cancel the other, which
    # would cancel the first again, until RecursionError (asyncio's own doing).
    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()
    otel_asyncres.flush()
    (deadlock,) = found
    assert {(t.name, t.source, t.resource_type) for t in deadlock.tasks} == {
        ("a", "Task.__await__", "asyncio.Task"),
        ("b", "Task.__await__", "asyncio.Task"),
    }


def test_a_condition_cycle_is_a_deadlock(diagnosed):
    """A waits on a Condition while holding a Lock that B needs before it can
    notify: B holds the Condition's lock, so nobody else can notify either."""
    found: list[Deadlock] = []
    diagnosed({"on_deadlock": found.append})

    async def waiter(cond, lock, ready):
        async with lock, cond:
            ready.set()
            await cond.wait()

    async def notifier(cond, lock, ready):
        await ready.wait()
        async with cond, lock:
            cond.notify()

    async def main():
        cond, lock, ready = asyncio.Condition(), asyncio.Lock(), asyncio.Event()
        a = asyncio.create_task(waiter(cond, lock, ready), name="waiter")
        b = asyncio.create_task(notifier(cond, lock, ready), name="notifier")
        await _wait_then_cancel(a, b)

    asyncio.run(main())
    otel_asyncres.flush()
    (deadlock,) = found
    assert {(t.name, t.source, t.resource_type) for t in deadlock.tasks} == {
        ("waiter", "Condition.wait", "asyncio.Condition"),
        ("notifier", "Lock.acquire", "asyncio.Lock"),
    }


def test_contention_and_timeouts_are_not_deadlocks(diagnosed, run):
    found: list[Deadlock] = []
    traced = diagnosed({"on_deadlock": found.append})

    async def contender(lock, sem, n):
        for _ in range(n):
            async with sem, lock:
                await asyncio.sleep(0)

    async def impatient(first, second):
        """The inverted acquire, with a timeout: a wait that ends by itself."""
        async with first:
            await asyncio.sleep(0.01)
            try:
                await asyncio.wait_for(second.acquire(), 0.05)
            except asyncio.TimeoutError:
                return "gave up"
            second.release()
            return "got it"

    async def main():
        lock, sem = asyncio.Lock(), asyncio.Semaphore(2)
        await asyncio.gather(*(contender(lock, sem, 20) for _ in range(5)))
        a, b = asyncio.Lock(), asyncio.Lock()
        return await asyncio.gather(impatient(a, b), impatient(b, a))

    # One gives up; the other may then get its lock in time (the program's
    # own timing): an inversion that timeouts end is no deadlock.
    assert "gave up" in run(main)
    assert found == []
    assert [e for e in lints(traced.spans()) if e[0] == "deadlock"] == []


# -- logging and configuration -----------------------------------------------------------------


async def _three_long_polls():
    for _ in range(3):
        time.sleep(0.03)
        await asyncio.sleep(0)


def test_each_kind_is_logged_once_per_task_when_asked(diagnosed, caplog):
    diagnosed(long_poll_threshold="20ms", log_diagnostics="true")
    with caplog.at_level(logging.WARNING, logger="otel_asyncres"):
        asyncio.run(_three_long_polls())
        otel_asyncres.uninstrument()
    ours = [r for r in caplog.records if r.name == "otel_asyncres"]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    assert ours[0].getMessage().startswith("long poll: task ")


def test_diagnostics_add_no_record_to_the_programs_logs_by_default(diagnosed, caplog):
    """A program that asserts on its own log records sees the same ones
    instrumented: the diagnostic travels on the span, not in the logs."""
    handle = diagnosed(long_poll_threshold="20ms")
    with caplog.at_level(logging.DEBUG):
        asyncio.run(_three_long_polls())
        otel_asyncres.uninstrument()
    assert {kind for kind, _ in lints(handle.spans())} == {"long_poll"}
    assert [r.getMessage() for r in caplog.records if r.name.startswith("otel_asyncres")] == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("long_poll_threshold", "fast"), ("self_wake_ratio", "2"), ("lost_wakers", "maybe"), ("deadlocks", "2")],
)
def test_bad_diagnostic_options_are_one_clear_error(option, value):
    with pytest.raises(ConfigError, match=option):
        load_settings({option: value}, environ={})


def test_diagnostic_options_from_the_environment():
    settings = load_settings(
        environ={
            "OTEL_ASYNCRES_LONG_POLL_THRESHOLD": "off",
            "OTEL_ASYNCRES_LONG_WAIT_THRESHOLD": "2s",
            "OTEL_ASYNCRES_SELF_WAKE_RATIO": "80%",
            "OTEL_ASYNCRES_DEADLOCKS": "false",
        }
    )
    assert settings.long_poll_threshold is None
    assert settings.long_wait_threshold == 2.0
    assert settings.self_wake_ratio == pytest.approx(0.8)
    assert settings.deadlocks is False and settings.lost_wakers is True
