"""``uninstrument()`` leaves asyncio exactly as ``instrument()`` found it.

The snapshot is generic, not a list of what the instrumentation patches today:
every attribute defined on every event loop class (recursively from
``asyncio.AbstractEventLoop``, plus uvloop's), every attribute of every loaded
module of asyncio, ``_asyncio``, ``concurrent.futures``, uvloop and a few
neighbours, every attribute defined on every class those modules define
(``Future``, ``Task``, ``Lock``, ``Queue``, ...), and the process-wide hooks
asyncio depends on (async generator hooks, coroutine origin tracking, profile
and trace functions, ``sys.monitoring`` tools, exception hooks, the event loop
policy, warning filters, gc callbacks). Attributes compare by identity; a name
that a class only inherited must not become defined on it.

Everything here runs in-process on the fixtures of ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import importlib.util
import sys
import threading
import time
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_asyncres
from conftest import LOOP_KINDS, run_with
from otel_asyncres.session import current_session

if importlib.util.find_spec("uvloop") is not None:
    import uvloop
else:  # pragma: no cover - depends on the machine
    uvloop = None

# -- the snapshot ------------------------------------------------------------------

#: Modules (and their submodules) whose namespaces, and whose classes, are compared.
MODULE_PREFIXES = (
    "asyncio",
    "_asyncio",
    "concurrent.futures",
    "uvloop",
    "selectors",
    "threading",
    "contextvars",
    "_contextvars",
)


def _in_scope(module_name: str) -> bool:
    return any(module_name == p or module_name.startswith(p + ".") for p in MODULE_PREFIXES)


def loop_classes() -> list[type]:
    """Every event loop class reachable from AbstractEventLoop, uvloop's included."""
    found: list[type] = [asyncio.AbstractEventLoop]
    pending: list[type] = [asyncio.AbstractEventLoop]
    if uvloop is not None:
        found.append(uvloop.Loop)
        pending.append(uvloop.Loop)
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


def _label(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _classes_in_scope() -> list[type]:
    classes: dict[int, type] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not _in_scope(name):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and _in_scope(getattr(value, "__module__", "") or ""):
                classes[id(value)] = value
    for cls in loop_classes():
        for owner in cls.__mro__:
            if owner is not object:
                classes[id(owner)] = owner
    return list(classes.values())


def _sys_hooks() -> dict[str, Any]:
    hooks: dict[str, Any] = {
        "sys.getasyncgenhooks()": tuple(sys.get_asyncgen_hooks()),
        "sys.get_coroutine_origin_tracking_depth()": sys.get_coroutine_origin_tracking_depth(),
        "sys.getprofile()": sys.getprofile(),
        "sys.gettrace()": sys.gettrace(),
        "sys.excepthook": sys.excepthook,
        "sys.unraisablehook": sys.unraisablehook,
        "threading.excepthook": threading.excepthook,
        "threading.getprofile()": getattr(threading, "_profile_hook", None),
        "threading.gettrace()": getattr(threading, "_trace_hook", None),
        "asyncio.get_event_loop_policy()": asyncio.get_event_loop_policy(),
        "gc.callbacks": tuple(gc.callbacks),
    }
    policy = asyncio.get_event_loop_policy()
    hooks.update({f"policy.{k}": v for k, v in vars(policy).items()})
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        for tool in range(6):
            hooks[f"sys.monitoring.get_tool({tool})"] = monitoring.get_tool(tool)
            hooks[f"sys.monitoring.get_events({tool})"] = monitoring.get_events(tool)
    return hooks


@dataclass
class Snapshot:
    """Identities of everything asyncio's behaviour could be changed through."""

    #: (owner label, attribute name) -> the object, compared by identity.
    objects: dict[tuple[str, str], Any] = field(default_factory=dict)
    #: Process-wide settings, compared by equality (tuples of hooks, tool names, ...).
    values: dict[str, Any] = field(default_factory=dict)
    loops: list[str] = field(default_factory=list)

    @classmethod
    def take(cls) -> Snapshot:
        snap = cls()
        for name, module in list(sys.modules.items()):
            if module is not None and _in_scope(name) and isinstance(module, types.ModuleType):
                for attr, value in list(vars(module).items()):
                    snap.objects[(f"module {name}", attr)] = value
        for klass in _classes_in_scope():
            for attr, value in list(vars(klass).items()):
                snap.objects[(f"class {_label(klass)}", attr)] = value
        snap.values = _sys_hooks()
        snap.values["warnings.filters"] = list(warnings.filters)
        snap.loops = sorted(_label(c) for c in loop_classes())
        return snap

    def differences(self, other: Snapshot) -> list[str]:
        out = []
        for key in sorted(self.objects.keys() | other.objects.keys()):
            owner, attr = key
            if key not in other.objects:
                out.append(f"{owner}: {attr!r} no longer defined (was {self.objects[key]!r})")
            elif key not in self.objects:
                out.append(f"{owner}: {attr!r} now defined ({other.objects[key]!r}), was only inherited")
            elif self.objects[key] is not other.objects[key]:
                out.append(f"{owner}: {attr!r} was {self.objects[key]!r}, now {other.objects[key]!r}")
        for name in sorted(self.values.keys() | other.values.keys()):
            before, after = self.values.get(name, "<absent>"), other.values.get(name, "<absent>")
            if not _same(before, after):
                out.append(f"{name}: was {before!r}, now {after!r}")
        if self.loops != other.loops:
            out.append(f"event loop classes: were {self.loops}, now {other.loops}")
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a is b or (type(a) is type(b) and isinstance(a, (int, str, float, type(None))) and a == b)


# -- a workload touching every primitive ---------------------------------------------


def _blocking(x: int) -> int:
    return x * 2


async def workload() -> list[Any]:
    """Tasks, futures, every lock-like primitive, queues, timeouts, threads,
    cancellation and failures; returns what it observed, for comparison."""
    loop = asyncio.get_running_loop()
    seen: list[Any] = []
    lock, sem, bsem = asyncio.Lock(), asyncio.Semaphore(1), asyncio.BoundedSemaphore(2)
    ev, cond = asyncio.Event(), asyncio.Condition()
    q: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    flag = [False]

    async def worker(i: int) -> int:
        async with lock:
            await asyncio.sleep(0)
        async with sem, bsem:
            await asyncio.sleep(0)
        await ev.wait()
        async with cond:
            await cond.wait_for(lambda: flag[0])
        await q.put(i)
        return i

    async def consumer() -> list[int]:
        return [await q.get() for _ in range(3)]

    workers = [asyncio.create_task(worker(i), name=f"w-worker-{i}") for i in range(3)]
    cons = asyncio.create_task(consumer(), name="w-consumer")
    await asyncio.sleep(0)
    ev.set()
    await asyncio.sleep(0)
    async with cond:
        flag[0] = True
        cond.notify_all()
    seen.append(await asyncio.gather(*workers))
    seen.append(sorted(await cons))

    fut = loop.create_future()
    loop.call_soon(fut.set_result, "soon")
    seen.append(await fut)
    plain: asyncio.Future[str] = asyncio.Future()
    waiter = asyncio.create_task(asyncio.wait_for(plain, 60), name="w-plain-waiter")
    await asyncio.sleep(0)
    plain.set_result("plain")
    seen.append(await waiter)

    async def forever() -> None:
        await asyncio.Event().wait()

    try:
        await asyncio.wait_for(forever(), 0.001)
    except asyncio.TimeoutError:
        seen.append("timeout")
    victim = asyncio.create_task(forever(), name="w-victim")
    await asyncio.sleep(0)
    victim.cancel()
    seen.append([repr(x) for x in await asyncio.gather(victim, return_exceptions=True)])

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("w")

    seen.append(
        [repr(x) for x in await asyncio.gather(fails(), asyncio.sleep(0.001), return_exceptions=True)]
    )
    seen.append(await asyncio.shield(asyncio.sleep(0, result="shielded")))
    seen.append(await loop.run_in_executor(None, _blocking, 21))
    seen.append(await asyncio.to_thread(_blocking, 4))
    if sys.version_info >= (3, 11):
        barrier = asyncio.Barrier(2)
        seen.append(sorted(await asyncio.gather(barrier.wait(), barrier.wait())))
        async with asyncio.TaskGroup() as tg:
            t = tg.create_task(asyncio.sleep(0, result="tg"), name="w-tg-child")
        seen.append(t.result())
        try:
            async with asyncio.timeout(0.001):
                await forever()
        except TimeoutError:
            seen.append("timeout ctx")

    async def agen():  # type: ignore[no-untyped-def]
        for i in range(2):
            yield i
            await asyncio.sleep(0)

    seen.append([i async for i in agen()])
    return seen


def run_workload_everywhere() -> list[list[Any]]:
    return [run_with(kind, workload) for kind in LOOP_KINDS]


def warm_up() -> list[list[Any]]:
    """Initialise lazily created state before a snapshot: asyncio's (the event
    loop policy, executors) and the OpenTelemetry SDK's, whose
    ``TracerProvider.get_tracer`` installs a warnings filter on every call
    (deduplicated, so once is enough)."""
    make_provider()[0].get_tracer("warm-up")
    return run_workload_everywhere()


# -- helpers ----------------------------------------------------------------------


def make_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def span_names(spans: list[ReadableSpan]) -> collections.Counter[str]:
    return collections.Counter(s.name for s in spans)


def wait_for_threads_to_end(before: set[threading.Thread], timeout: float = 10.0) -> list[threading.Thread]:
    """Threads started since ``before`` that are still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in set(threading.enumerate()) - before if t.is_alive()]


def assert_no_internal_errors() -> None:
    session = current_session()
    assert session is not None
    session.handoff.flush()
    assert session.handoff.errors == {}, "the instrumentation counted internal errors"
    assert not session.bridge.errors, "the span bridge counted internal errors"


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No session before; none left behind, whatever the test does. Every
    task is shown, however short (the tests count spans)."""
    assert current_session() is None, "a previous test left asyncio instrumented"
    monkeypatch.setenv("OTEL_ASYNCRES_MIN_TASK_DURATION", "0")
    monkeypatch.setenv("OTEL_ASYNCRES_MIN_WAIT_DURATION", "0")
    try:
        yield
    finally:
        otel_asyncres.uninstrument()


# -- the tests --------------------------------------------------------------------


def test_snapshot_covers_the_brief() -> None:
    """The snapshot sees the classes and names it must see (guards against a blind snapshot)."""
    snap = Snapshot.take()
    owners = {owner for owner, _ in snap.objects}
    for cls in (asyncio.Future, asyncio.Task, asyncio.Lock, asyncio.Semaphore, asyncio.BoundedSemaphore):
        assert f"class {_label(cls)}" in owners
    for cls in (asyncio.Event, asyncio.Condition, asyncio.Queue, asyncio.PriorityQueue, asyncio.LifoQueue):
        assert f"class {_label(cls)}" in owners
    if hasattr(asyncio, "Barrier"):
        assert f"class {_label(asyncio.Barrier)}" in owners
    assert ("class asyncio.base_events.BaseEventLoop", "call_soon") in snap.objects
    assert ("class asyncio.base_events.BaseEventLoop", "create_task") in snap.objects
    assert ("class asyncio.base_events.BaseEventLoop", "create_future") in snap.objects
    assert ("module asyncio", "sleep") in snap.objects
    assert ("module asyncio.tasks", "Task") in snap.objects
    if uvloop is not None:
        assert "uvloop.Loop" in snap.loops
    # The comparison itself can fail: a patched and an added attribute both show.
    patched = Snapshot.take()
    key = ("class asyncio.base_events.BaseEventLoop", "call_soon")
    patched.objects[key] = lambda *a: None
    patched.objects[("class asyncio.unix_events._UnixSelectorEventLoop", "call_soon")] = object()
    diffs = snap.differences(patched)
    assert len(diffs) == 2, diffs


def test_uninstrument_restores_everything(clean: None) -> None:
    expected = warm_up()
    threads_before = set(threading.enumerate())
    before = Snapshot.take()
    provider, exporter = make_provider()

    otel_asyncres.instrument(tracer_provider=provider)
    during = Snapshot.take()
    assert before.differences(during), "instrument() changed nothing the snapshot can see"
    assert run_workload_everywhere() == expected
    assert_no_internal_errors()
    otel_asyncres.uninstrument()

    assert before.differences(Snapshot.take()) == []
    names = span_names(exporter.get_finished_spans())
    for i in range(3):
        assert names[f"task w-worker-{i}"] == len(LOOP_KINDS), names
    assert wait_for_threads_to_end(threads_before) == []

    # Nothing is recorded any more, and asyncio still works the same.
    count = len(exporter.get_finished_spans())
    assert run_workload_everywhere() == expected
    assert len(exporter.get_finished_spans()) == count
    assert before.differences(Snapshot.take()) == []


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the registry hook is for eager_start, 3.12+")
def test_the_task_registry_hook_is_removed_again(clean: None) -> None:
    """The one instance this package patches (asyncio's set of scheduled
    tasks, whose ``add`` sees a task started eagerly by its constructor) has
    no attribute of its own again after uninstrument()."""
    registry = asyncio.tasks._scheduled_tasks  # type: ignore[attr-defined]
    assert "add" not in vars(registry)
    provider, _ = make_provider()
    otel_asyncres.instrument(tracer_provider=provider)
    assert "add" in vars(registry)
    otel_asyncres.uninstrument()
    assert "add" not in vars(registry)


def test_instrument_again_after_uninstrument(clean: None) -> None:
    warm_up()
    before = Snapshot.take()
    for round_ in range(2):
        provider, exporter = make_provider()
        otel_asyncres.instrument(tracer_provider=provider)
        run_with("asyncio", workload)
        otel_asyncres.uninstrument()
        assert span_names(exporter.get_finished_spans())["task w-consumer"] == 1, round_
        assert before.differences(Snapshot.take()) == [], round_


def _instrumented_run(instrument_calls: int) -> tuple[collections.Counter[str], list[InMemorySpanExporter]]:
    exporters = []
    sessions = set()
    for _ in range(instrument_calls):
        provider, exporter = make_provider()
        exporters.append(exporter)
        otel_asyncres.instrument(tracer_provider=provider)
        sessions.add(id(current_session()))
    assert len(sessions) == 1, "a second instrument() started a second session"
    run_with("asyncio", workload)
    otel_asyncres.uninstrument()
    return span_names(exporters[0].get_finished_spans()), exporters


def test_instrument_twice_is_a_no_op(clean: None) -> None:
    warm_up()
    before = Snapshot.take()
    once, _ = _instrumented_run(1)

    otel_asyncres.instrument(tracer_provider=make_provider()[0])
    session = current_session()
    first = Snapshot.take()
    otel_asyncres.instrument(tracer_provider=make_provider()[0])
    assert current_session() is session
    assert first.differences(Snapshot.take()) == [], "the second instrument() patched again"
    otel_asyncres.uninstrument()
    assert before.differences(Snapshot.take()) == []

    twice, exporters = _instrumented_run(2)
    assert exporters[1].get_finished_spans() == ()
    task_spans = {name: n for name, n in twice.items() if name.startswith("task w-")}
    assert task_spans == {name: n for name, n in once.items() if name.startswith("task w-")}
    assert all(n == 1 for n in task_spans.values()), task_spans
    assert before.differences(Snapshot.take()) == []


def test_uninstrument_twice_and_without_instrument(clean: None) -> None:
    warm_up()
    before = Snapshot.take()
    otel_asyncres.uninstrument()  # nothing to undo
    assert before.differences(Snapshot.take()) == []
    otel_asyncres.instrument(tracer_provider=make_provider()[0])
    otel_asyncres.uninstrument()
    otel_asyncres.uninstrument()
    assert current_session() is None
    assert before.differences(Snapshot.take()) == []
    assert run_with("asyncio", workload) == run_with("asyncio", workload)


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


LOOP_FLAVOURS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])


@pytest.mark.parametrize("kind", LOOP_FLAVOURS)
def test_loops_made_before_and_after_instrument_are_both_instrumented(clean: None, kind: str) -> None:
    async def child() -> str:
        await asyncio.sleep(0)
        return "child"

    async def main(tag: str) -> str:
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, tag)
        return await asyncio.create_task(child(), name=f"child-{tag}") + await fut

    early = _new_loop(kind)
    early_attrs = dict(vars(early))
    early_factory = early.get_task_factory()
    try:
        provider, exporter = make_provider()
        otel_asyncres.instrument(tracer_provider=provider)
        late = _new_loop(kind)
        try:
            assert early.run_until_complete(main("early")) == "childearly"
            assert late.run_until_complete(main("late")) == "childlate"
            assert_no_internal_errors()
            otel_asyncres.uninstrument()
            names = span_names(exporter.get_finished_spans())
            assert names["task child-early"] == 1, names
            assert names["task child-late"] == 1, names
            assert late.run_until_complete(main("after")) == "childafter"
        finally:
            late.close()
        # Nothing was hooked on the instance.
        assert early.get_task_factory() is early_factory
        assert set(vars(early)) == set(early_attrs)
        for name in ("call_soon", "create_task", "create_future", "call_soon_threadsafe", "call_at"):
            assert name not in vars(early), name
        assert early.run_until_complete(main("after")) == "childafter"
    finally:
        early.close()


@pytest.mark.parametrize("kind", LOOP_FLAVOURS)
def test_futures_made_while_instrumented_work_after_uninstrument(clean: None, kind: str) -> None:
    loop = _new_loop(kind)
    try:
        otel_asyncres.instrument(tracer_provider=make_provider()[0])

        async def make() -> list[asyncio.Future[Any]]:
            return [loop.create_future() for _ in range(6)]

        futs = loop.run_until_complete(make())
        outside = loop.create_future()  # made outside any task

        async def wait(f: asyncio.Future[Any]) -> Any:
            return await f

        parked = loop.create_task(wait(futs[0]), name="parked")
        loop.run_until_complete(asyncio.sleep(0))
        assert not parked.done()
        otel_asyncres.uninstrument()

        # Awaited across the boundary.
        futs[0].set_result("across")
        assert loop.run_until_complete(parked) == "across"
        # set_result, then await in a task made after uninstrument.
        futs[1].set_result(1)
        assert loop.run_until_complete(wait(futs[1])) == 1
        assert futs[1].result() == 1
        # cancel.
        t = loop.create_task(wait(futs[2]))
        loop.run_until_complete(asyncio.sleep(0))
        assert futs[2].cancel("bye") is True
        assert futs[2].cancelled()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(t)
        assert futs[2].cancel() is False
        # set_exception.
        futs[3].set_exception(KeyError("k"))
        with pytest.raises(KeyError):
            loop.run_until_complete(wait(futs[3]))
        assert isinstance(futs[3].exception(), KeyError)
        # done callbacks: added, removed, called in order.
        calls: list[str] = []

        def first(_: Any) -> None:
            calls.append("first")

        def second(_: Any) -> None:
            calls.append("second")

        futs[4].add_done_callback(first)
        futs[4].add_done_callback(second)
        futs[4].add_done_callback(first)
        assert futs[4].remove_done_callback(first) == 2
        futs[4].set_result(None)
        loop.run_until_complete(asyncio.sleep(0))
        assert calls == ["second"]
        # invalid states still raise what asyncio raises.
        with pytest.raises(asyncio.InvalidStateError):
            futs[5].result()
        futs[5].set_result(5)
        with pytest.raises(asyncio.InvalidStateError):
            futs[5].set_result(6)
        outside.set_result("outside")
        assert loop.run_until_complete(wait(outside)) == "outside"
        assert all(f.get_loop() is loop for f in futs)
    finally:
        loop.close()


def test_toggling_while_the_loop_runs(clean: None, caplog: pytest.LogCaptureFixture) -> None:
    """instrument() and uninstrument() called from inside a running task: tasks
    alive across either boundary finish normally and asyncio logs nothing."""
    warm_up()
    before = Snapshot.take()
    provider, exporter = make_provider()

    async def sleeper(ev: asyncio.Event, out: list[str], tag: str) -> None:
        await ev.wait()
        await asyncio.sleep(0)
        out.append(tag)

    async def main() -> list[str]:
        out: list[str] = []
        ev1, ev2 = asyncio.Event(), asyncio.Event()
        old = asyncio.create_task(sleeper(ev1, out, "old"), name="old")
        await asyncio.sleep(0)
        otel_asyncres.instrument(tracer_provider=provider)
        new = asyncio.create_task(sleeper(ev2, out, "new"), name="new")
        await asyncio.sleep(0)
        ev1.set()
        await old
        otel_asyncres.uninstrument()
        ev2.set()
        await new
        after = asyncio.create_task(sleeper(ev2, out, "after"), name="after")
        await after
        return out

    with caplog.at_level("DEBUG", logger="asyncio"):
        assert run_with("asyncio", main) == ["old", "new", "after"]
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelname != "DEBUG"] == []
    assert before.differences(Snapshot.take()) == []
    names = span_names(exporter.get_finished_spans())
    assert names["task new"] == 1, names
    assert names["task after"] == 0, names


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_workload_results_are_unchanged_on_every_loop_kind(clean: None, kind: str) -> None:
    expected = run_with(kind, workload)
    provider, _ = make_provider()
    otel_asyncres.instrument(tracer_provider=provider)
    with contextlib.ExitStack() as stack:
        stack.callback(otel_asyncres.uninstrument)
        assert run_with(kind, workload) == expected
        assert_no_internal_errors()
