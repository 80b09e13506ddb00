"""Every program in examples/ as a user runs it, three ways.

(a) plain ``python``, (b) ``otel-asyncres run --exporter none``, (c)
``otel-asyncres run`` with the default console view (NO_COLOR=1). All three
must exit 0 with the same stdout; (c) must show the tasks each example names
and the resources and async ops it is meant to show. The programs run in
subprocesses with an explicit environment (no OTEL_* from outside), all at
once, the first time a test needs them. Nothing here depends on timings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
PACKAGE = ROOT / "src" / "otel_asyncres"
TIMEOUT = 60  # seconds: a hang fails the test instead of the whole run
MODES = {
    "plain": [sys.executable],
    "none": [sys.executable, "-m", "otel_asyncres", "run", "--exporter", "none"],
    "console": [sys.executable, "-m", "otel_asyncres", "run"],
}
PY311 = sys.version_info >= (3, 11)


def child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTEL_") and k not in ("NO_COLOR", "FORCE_COLOR", "PYTHONWARNINGS")
    }
    env["NO_COLOR"] = "1"
    # Every task and wait shown, whatever the machine's speed: on a loaded
    # machine a sleep may overrun until waits fall under the default threshold.
    env["OTEL_ASYNCRES_MIN_TASK_DURATION"] = env["OTEL_ASYNCRES_MIN_WAIT_DURATION"] = "0"
    # A poll is long by the clock: the examples must be free of real long polls,
    # not of a loaded machine's hiccups (the default has tests of its own).
    env["OTEL_ASYNCRES_LONG_POLL_THRESHOLD"] = "500ms"
    return env


@cache
def results() -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    """Run every example in every mode, in parallel; (example, mode) -> result."""
    env = child_env()
    procs = {
        (name, mode): subprocess.Popen(
            [*argv, str(ROOT / "examples" / f"{name}.py")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in EXAMPLES
        for mode, argv in MODES.items()
    }
    done = {}
    for key, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\n[test_examples: killed after {TIMEOUT}s]"
        done[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


# -- the console view, parsed ------------------------------------------------------------

SPAN_LINE = re.compile(r"^[\s│├└─]*(task|resource|async_op) (.+?)  #(\d+)  (.*)$")


@dataclass
class Line:
    kind: str  # task, resource, async_op
    name: str  # "task worker-0", "resource asyncio.Lock", "async_op Lock.acquire"
    id: int
    rest: str  # duration, outcome, state, links, location


def console_spans(name: str) -> list[Line]:
    stderr = results()[(name, "console")].stderr
    found = []
    for text in stderr.splitlines():
        m = SPAN_LINE.match(text)
        if m:
            found.append(Line(m[1], f"{m[1]} {m[2]}", int(m[3]), m[4]))
    return found


def named(lines: list[Line], name: str) -> list[Line]:
    return [line for line in lines if line.name == name]


def woken_by(line: Line) -> str | None:
    """The name of the task an async op was woken by, as the console prints it."""
    m = re.search(r"woken by task #\d+ \(([^)]*)\)", line.rest)
    return m[1] if m else None


def awaited_by(line: Line) -> str | None:
    m = re.search(r"awaited by task #\d+ \(([^)]*)\)", line.rest)
    return m[1] if m else None


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_have_no_diagnostics(name: str) -> None:
    """No lint, deadlock or lost waker: the examples show asyncio used well."""
    stderr = results()[(name, "console")].stderr
    assert "trace " in stderr, stderr  # the view was printed at all
    assert "diagnostics: " not in stderr, stderr


# -- what each example must show in the console view -------------------------------------

URLS = ["/", "/about", "/blog", "/blog/1", "/blog/2", "/contact"]
EXPECTED: dict[str, list[str]] = {
    "oneshot": [
        *(f"task {t}" for t in ("main", "tokio-oneshot", "receiver", "sender")),
        "resource asyncio.Future",
        "async_op Future.__await__",
        "async_op sleep",
    ],
    "mutex_contention": [
        "task main",
        *(f"task worker-{i}" for i in range(4)),
        "resource asyncio.Lock",
        "async_op Lock.acquire",
        "async_op sleep",
    ],
    "semaphore_crawler": [
        "task main",
        *(f"task fetch https://example.com{u}" for u in URLS),
        "resource asyncio.Semaphore",
        "async_op Semaphore.acquire",
        "async_op sleep",
    ],
    "pipeline": [
        *(f"task {t}" for t in ("main", "producer", "transformer", "consumer")),
        "resource asyncio.Queue",
        "async_op Queue.put",
        "async_op Queue.get",
        "async_op Queue.join",
        "async_op sleep",
    ],
    "barrier": [
        "task main",
        *(
            [*(f"task player-{i}" for i in range(3)), "resource asyncio.Barrier", "async_op Barrier.wait"]
            if PY311
            else []
        ),
    ],
    "custom_pool": [
        "task main",
        *(f"task query-{n}" for n in range(4)),
        "resource mylib.ConnectionPool",
        "async_op ConnectionPool.acquire",
        "resource asyncio.Queue",
        "async_op Queue.get",
    ],
    "timeouts": [
        *(f"task {t}" for t in ("main", "wait_for-demo", "timeout-demo")),
        *(["task feeder"] if PY311 else []),
        "async_op sleep",
    ],
}


def test_every_example_has_expectations():
    assert sorted(EXPECTED) == EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_same_stdout_in_all_modes(name):
    for mode in MODES:
        result = results()[(name, mode)]
        assert result.returncode == 0, f"{mode}: exit {result.returncode}\n{result.stderr}"
    plain, none, console = (results()[(name, mode)] for mode in MODES)
    assert plain.stdout
    assert none.stdout == plain.stdout
    assert console.stdout == plain.stdout
    # No exporter: nothing at all on stderr, as with python.
    assert none.stderr == plain.stderr == ""


@pytest.mark.parametrize("name", EXAMPLES)
def test_console_has_no_errors(name):
    stderr = results()[(name, "console")].stderr
    assert stderr.startswith("trace "), stderr
    assert "internal error" not in stderr
    assert "Traceback" not in stderr
    assert "\x1b[" not in stderr  # NO_COLOR


@pytest.mark.parametrize("name", EXAMPLES)
def test_console_shows_expected_spans(name):
    shown = {line.name for line in console_spans(name)}
    missing = [s for s in EXPECTED[name] if s not in shown]
    assert not missing, f"missing {missing} in:\n{results()[(name, 'console')].stderr}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_console_references_resolve(name):
    """Every task the view names (awaited by, woken by) has a task span of its own."""
    lines = console_spans(name)
    tasks = {line.id for line in lines if line.kind == "task"}
    stderr = results()[(name, "console")].stderr
    referenced = {int(i) for i in re.findall(r"\b(?:by|awaiting) task #(\d+)", stderr)}
    assert referenced <= tasks, f"tasks without a span: {sorted(referenced - tasks)}\n{stderr}"


# -- per example ------------------------------------------------------------------------------


def test_mutex_each_waiter_woken_by_the_previous_holder():
    """asyncio.Lock is FIFO: worker-0 takes it first, the others queue in
    spawn order, and worker-0 re-queues behind them for its second round. So
    each of the 7 waits is woken by the worker just ahead in the ring."""
    acquires = named(console_spans("mutex_contention"), "async_op Lock.acquire")
    assert len(acquires) == 7
    for op in acquires:
        waiter, waker = awaited_by(op), woken_by(op)
        assert waiter and waker, op
        assert int(waker.split("-")[1]) == (int(waiter.split("-")[1]) - 1) % 4, op
        assert " ok " in f" {op.rest} "
    (lock,) = named(console_spans("mutex_contention"), "resource asyncio.Lock")
    assert "locked=false waiters=0" in lock.rest


def test_crawler_queued_fetches_woken_by_fetches():
    lines = console_spans("semaphore_crawler")
    acquires = named(lines, "async_op Semaphore.acquire")
    assert len(acquires) == len(URLS) - 2  # two permits: the first two never wait
    for op in acquires:
        assert (woken_by(op) or "").startswith("fetch https://example.com"), op
        assert woken_by(op) != awaited_by(op), op
    (sem,) = named(lines, "resource asyncio.Semaphore")
    assert "permits=2 waiters=0" in sem.rest


def test_pipeline_backpressure_and_joins():
    lines = console_spans("pipeline")
    queues = named(lines, "resource asyncio.Queue")
    assert len(queues) == 2
    for queue in queues:
        assert "size=0 maxsize=2 getters=0 putters=0 unfinished_tasks=0" in queue.rest, queue
    puts = named(lines, "async_op Queue.put")
    assert {awaited_by(op) for op in puts} == {"producer", "transformer"}
    for op in puts:  # a full queue is drained by the stage downstream of it
        assert woken_by(op) == {"producer": "transformer", "transformer": "consumer"}[awaited_by(op)], op
    joins = named(lines, "async_op Queue.join")
    assert [(awaited_by(op), woken_by(op)) for op in joins] == [
        ("main", "transformer"),  # raw: the transformer's last task_done
        ("main", "consumer"),  # cooked: the consumer's last task_done
    ]


@pytest.mark.skipif(not PY311, reason="asyncio.Barrier is new in 3.11")
def test_barrier_waits_woken_by_the_last_arrival():
    lines = console_spans("barrier")
    waits = named(lines, "async_op Barrier.wait")
    assert len(waits) == 2 * 3  # three rounds, the two early players of each wait
    for op in waits:
        assert (woken_by(op) or "").startswith("player-"), op
        assert woken_by(op) != awaited_by(op), op
    (barrier,) = named(lines, "resource asyncio.Barrier")
    assert "parties=3 arrived=0 broken=false" in barrier.rest


@pytest.mark.skipif(not PY311, reason="asyncio.Barrier is new in 3.11")
def test_barrier_own_condition_is_not_a_user_resource():
    """The program makes one Barrier and no Condition; the Condition the
    Barrier makes for itself is internal (like a Condition's own Lock) and
    belongs under the Barrier, not next to it as a resource of ``main``."""
    shown = {line.name for line in console_spans("barrier")}
    assert "resource asyncio.Condition" not in shown, results()[("barrier", "console")].stderr


def test_timeouts_event_final_state():
    """The Event nobody sets: its one waiter gave up at the deadline and left
    the Event's waiters, so the final state has no waiters."""
    (event,) = named(console_spans("timeouts"), "resource asyncio.Event")
    assert "is_set=false waiters=0" in event.rest, event


# -- asyncio.Timeout: switches on by itself once the package instruments it ----------------


def _timeout_instrumented() -> bool:
    return any("asyncio.Timeout" in p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))


def test_timeouts_timeout_resource():
    """A deadline (``asyncio.timeout``; ``wait_for``, which uses one from 3.12
    on and is recorded as one on 3.10 and 3.11) is one span, its op, folded
    with its Timeout as a sleep is with its timer (issue 13 item 4): it shows
    the budget it allowed in ms, not only an epoch deadline."""
    if not _timeout_instrumented():
        pytest.skip("Timeout resources not yet instrumented")
    spans = console_spans("timeouts")
    stderr = results()[("timeouts", "console")].stderr
    assert "resource asyncio.Timeout" not in {line.name for line in spans}, stderr
    guards = [line for line in spans if line.name in ("async_op timeout", "async_op wait_for")]
    budgets = sorted(line.rest.split("budget=")[1].split()[0] for line in guards)
    expected = ["1000ms", "5ms"] * (2 if sys.version_info >= (3, 11) else 1)
    assert budgets == sorted(expected), stderr
    assert sum("expired=true" in line.rest for line in guards) == len(expected) // 2, stderr
