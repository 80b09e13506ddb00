"""A real Jaeger (v2, built from deploy/jaeger's Go module, in-memory storage):
what it stores and shows of the project's traces, read back through its query
APIs: /api (the one its UI reads) and /api/v3 (Jaeger v2's OTLP-shaped one).

Each program (the one-shot example, the examples with contention: mutex, semaphore and
queues, a failing task, a
program longer than three windows) runs once under ``otel-asyncres run`` for the
whole module, in one or two ways:

- exported straight to Jaeger (gRPC; the one-shot over HTTP/protobuf too): the
  exit summary's span count must be what Jaeger holds;
- exported to the in-process receiver of tests/otlp_receivers.py, whose requests
  are then posted as they are to Jaeger's OTLP/HTTP receiver ("relayed"): every
  span Jaeger shows is compared with the span that was sent, field by field.

Each check is a test of its own, parametrized over the runs, so that a known open
defect (an xfail with its reason) hides no other check. Without Go the tests skip,
unless OTEL_ASYNCRES_REQUIRE_JAEGER=1 (.ci/run), where they fail.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import jaeger as jaeger_build
from otlp_receivers import GrpcReceiver, ReceivedSpan, attributes, child_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MAPPING = (ROOT / "docs" / "mapping.md").read_text()
TIMEOUT = 120  # seconds for one program; a hang must fail the test, not the run
SUMMARY = re.compile(r"otel-asyncres: (\d+) spans exported to (\S+) \((grpc|http/protobuf)\)")
#: Tags Jaeger derives from the span and its scope rather than its attributes.
DERIVED_TAGS = {"otel.scope.name", "otel.scope.version", "span.kind", "error", "otel.status_code"}
DERIVED_TAGS |= {"otel.status_description"}
JAEGER_TYPES = {str: "string", bool: "bool", int: "int64", float: "float64"}

FAILING = """\
import asyncio


async def fetch() -> None:
    await asyncio.sleep(0.01)
    raise ValueError("upstream said no")


async def main() -> None:
    task = asyncio.create_task(fetch(), name="fetch")
    try:
        await task
    except ValueError as error:
        print(f"caught {error}")


asyncio.run(main())
"""

#: Runs about a second: with --window-duration 0.2s, five windows of main and the lock.
LONG = """\
import asyncio


async def child(lock: asyncio.Lock) -> None:
    async with lock:
        await asyncio.sleep(0.03)


async def main() -> None:
    lock = asyncio.Lock()
    for round_ in range(6):
        children = [asyncio.create_task(child(lock), name=f"child-{round_}-{i}") for i in range(2)]
        await asyncio.gather(*children)
        await asyncio.sleep(0.1)
    print("done")


asyncio.run(main())
"""
LONG_OPTIONS = ("--window-duration", "0.2s")


# -- Jaeger --------------------------------------------------------------------------


def binary_or_skip() -> Path:
    """The Jaeger binary (built once, cached); without Go, a skip, or a failure
    where Jaeger is required."""
    try:
        return jaeger_build.build()
    except jaeger_build.GoMissing as error:
        if jaeger_build.required():
            pytest.fail(f"{error}, and {jaeger_build.REQUIRE}=1")
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def jaeger() -> Iterator[jaeger_build.Jaeger]:
    """Jaeger started on free ports for this module."""
    with jaeger_build.Jaeger(binary_or_skip()) as server:
        yield server


def test_without_go_a_skip_or_where_required_a_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_go() -> str:
        raise jaeger_build.GoMissing("no Go toolchain here")

    monkeypatch.setenv("OTEL_ASYNCRES_JAEGER_CACHE", str(tmp_path))  # nothing built yet
    monkeypatch.setattr(jaeger_build, "find_go", no_go)
    monkeypatch.delenv(jaeger_build.REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        binary_or_skip()
    assert str(skipped.value) == "no Go toolchain here"  # one line
    monkeypatch.setenv(jaeger_build.REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception):
        binary_or_skip()
    # A build that fails is a failure, never a skip.
    monkeypatch.delenv(jaeger_build.REQUIRE)
    monkeypatch.setattr(jaeger_build, "find_go", lambda: "false")
    with pytest.raises(RuntimeError, match="go build"):
        binary_or_skip()


@dataclass
class JSpan:
    """One span as Jaeger's API shows it."""

    raw: dict[str, Any]
    id: str = ""
    name: str = ""
    parent: str | None = None
    #: References past the parent: (refType, spanID).
    refs: list[tuple[str, str]] = field(default_factory=list)
    #: The parent reference is FOLLOWS_FROM: the span links to its own parent
    #: (Jaeger makes one reference of the two).
    parent_linked: bool = False
    tags: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    #: (event name, fields) in Jaeger's order.
    logs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        raw = self.raw
        self.id, self.name = raw["spanID"], raw["operationName"]
        refs = [(r["refType"], r["spanID"]) for r in raw["references"] or []]
        trace = raw["traceID"]
        assert all(r["traceID"] == trace for r in raw["references"] or []), raw["references"]
        self.tags = {t["key"]: t["value"] for t in raw["tags"]}
        if refs and refs[0][0] == "CHILD_OF":
            self.parent = refs.pop(0)[1]
        elif refs and self.tags.get("asyncio.window.index", 0) > 0:
            # A root's continuation window: its parent is the first window, which
            # for the second window is also the window before, linked
            # previous_window. Jaeger's translator then puts the parent first,
            # as FOLLOWS_FROM (check_structure checks it is that window).
            self.parent = refs[0][1]
            self.parent_linked = True
        self.refs = refs
        self.types = {t["key"]: t["type"] for t in raw["tags"]}
        for log in raw["logs"] or []:
            fields = {f["key"]: f["value"] for f in log["fields"]}
            self.logs.append((fields.pop("event", ""), fields))

    def raw_refs(self) -> list[tuple[str, str]]:
        return [(r["refType"], r["spanID"]) for r in self.raw["references"] or []]

    def __repr__(self) -> str:
        return f"{self.name} ({self.id})"


def spans_of(trace: dict[str, Any]) -> list[JSpan]:
    return [JSpan(s) for s in trace["spans"]]


def describe(spans: list[JSpan]) -> str:
    by_id = {s.id: s for s in spans}
    return "\n".join(
        f"{s.id} <- {s.parent or '-':16} {s.name}  refs={[(t, by_id.get(i, i)) for t, i in s.refs]}"
        for s in spans
    )


def read_back(jaeger: jaeger_build.Jaeger, service: str, count: int) -> list[dict[str, Any]]:
    """The traces of ``service`` once Jaeger holds ``count`` spans for it, each
    fetched by id (the trace view's request) after the search found it."""
    found = jaeger.wait_for_spans(service, count)
    traces = []
    for summary in found:
        trace = jaeger.trace(summary["traceID"])
        assert trace is not None, summary["traceID"]
        traces.append(trace)
    total = sum(len(t["spans"]) for t in traces)
    assert total == count, f"Jaeger holds {total} spans of {service}, the program exported {count}"
    return traces


# -- running programs --------------------------------------------------------------


def run(program: Path, env: dict[str, str], *options: str) -> tuple[int, str]:
    """Run ``program`` under ``otel-asyncres run``; (spans exported, stdout)."""
    result = subprocess.run(
        [sys.executable, "-m", "otel_asyncres", "run", *options, str(program)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    summaries = [m for line in result.stderr.splitlines() if (m := SUMMARY.fullmatch(line))]
    assert len(summaries) == 1, result.stderr
    count = int(summaries[0][1])
    assert count > 0, result.stderr
    return count, result.stdout


def run_to_jaeger(
    jaeger: jaeger_build.Jaeger, program: Path, service: str, protocol: str, *options: str
) -> tuple[list[dict[str, Any]], str]:
    """The program exported straight to Jaeger; its traces as Jaeger shows them, and stdout."""
    endpoint = jaeger.otlp_grpc if protocol == "grpc" else jaeger.otlp_http
    env = child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_METRICS_EXPORTER="none",  # Jaeger takes traces only
        OTEL_SERVICE_NAME=service,
    )
    count, stdout = run(program, env, *options)
    return read_back(jaeger, service, count), stdout


def run_relayed(
    jaeger: jaeger_build.Jaeger, program: Path, service: str, *options: str
) -> tuple[list[ReceivedSpan], list[dict[str, Any]]]:
    """The program exported to the in-process receiver, whose requests are then
    posted to Jaeger unchanged: (what was sent, what Jaeger shows)."""
    with GrpcReceiver(metrics=False) as receiver:
        env = child_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_METRICS_EXPORTER="none",
            OTEL_SERVICE_NAME=service,
        )
        count, _ = run(program, env, *options)
        assert receiver.wait_for(count, timeout=10), f"{receiver.span_count()} of {count} spans arrived"
        requests, sent = list(receiver.requests), receiver.spans()
    assert len(sent) == count
    for request in requests:
        post = urllib.request.Request(
            f"{jaeger.otlp_http}/v1/traces",
            data=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(post, timeout=10) as response:
            assert response.status == 200
    return sent, read_back(jaeger, service, count)


# -- what every trace must satisfy ---------------------------------------------------


SKEW_WARNING = re.compile(
    r"clock skew adjustment disabled; not applying calculated delta of -?[0-9.]+[µmn]?s"
)


def ui_warnings(traces: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Jaeger's ``warnings`` in its v1 API (invalid parents, clock skew, duplicate
    ids...): (those no clock skew explains, the clock-skew warnings on spans that
    indeed do not lie inside their parent)."""
    unexplained = [f"trace {t['traceID']}: {w}" for t in traces for w in t.get("warnings") or []]
    explained: list[str] = []
    for trace in traces:
        spans = spans_of(trace)
        by_id = {s.id: s for s in spans}
        for s in spans:
            for warning in s.raw["warnings"] or []:
                parent = by_id.get(s.parent) if s.parent else None
                outside = parent is not None and not (
                    parent.raw["startTime"] <= s.raw["startTime"]
                    and s.raw["startTime"] + s.raw["duration"]
                    <= parent.raw["startTime"] + parent.raw["duration"]
                )
                found = f"{s} under {parent}: {warning}"
                (explained if outside and SKEW_WARNING.fullmatch(warning) else unexplained).append(found)
    return unexplained, explained


def check_no_warnings(traces: list[dict[str, Any]]) -> None:
    unexplained, explained = ui_warnings(traces)
    found = unexplained + explained
    assert not found, "Jaeger warns:\n" + "\n".join(found)


def check_one_trace(traces: list[dict[str, Any]]) -> list[JSpan]:
    """The program is one trace, with one root, the task asyncio.run made."""
    assert len(traces) == 1, "several traces: " + ", ".join(
        f"{t['traceID']} ({len(t['spans'])} spans, roots {[s.name for s in spans_of(t) if s.parent is None]})"
        for t in traces
    )
    spans = spans_of(traces[0])
    roots = [s for s in spans if s.parent is None]
    assert [s.name for s in roots] == ["task main"], describe(spans)
    return spans


def is_same_entity(a: JSpan, b: JSpan) -> bool:
    """Two windows of one task, resource or op."""
    for key in ("asyncio.async_op.id", "asyncio.resource.id", "asyncio.task.id"):
        if key in a.tags or key in b.tags:
            return bool(a.tags.get(key) == b.tags.get(key))
    return False


def is_continuation(span: JSpan, parent: JSpan) -> bool:
    """``span`` is a later window of the entity whose first window is ``parent``."""
    return parent.name == span.name and is_same_entity(parent, span)


def check_children_start_inside_their_parent(traces: list[dict[str, Any]]) -> None:
    """A child starts inside its parent (issue 12: Jaeger and Tempo draw it so);
    only a root's continuation windows, under its first window, start after it ended."""
    for trace in traces:
        spans = spans_of(trace)
        by_id = {s.id: s for s in spans}
        late = []
        for s in spans:
            parent = by_id.get(s.parent) if s.parent else None
            if parent is None or is_continuation(s, parent):
                continue
            start, parent_start = s.raw["startTime"], parent.raw["startTime"]
            if not parent_start <= start <= parent_start + parent.raw["duration"]:
                late.append(
                    f"{s} starts {start - parent_start} µs after its parent {parent} began "
                    f"(which lasted {parent.raw['duration']} µs)"
                )
        assert not late, "\n".join(late)


def check_structure(traces: list[dict[str, Any]]) -> None:
    """Parents and references as docs/mapping.md says, on every trace Jaeger shows."""
    for trace in traces:
        spans = spans_of(trace)
        by_id = {s.id: s for s in spans}
        assert len(by_id) == len(spans), "duplicate span ids"
        # Entity id -> the ids of its spans (one per window).
        tasks: dict[int, set[str]] = {}
        resources: dict[int, set[str]] = {}
        for s in spans:
            if s.name.startswith("task "):
                tasks.setdefault(s.tags["asyncio.task.id"], set()).add(s.id)
            elif s.name.startswith("resource "):
                resources.setdefault(s.tags["asyncio.resource.id"], set()).add(s.id)
        for s in spans:
            kind = s.name.split(" ", 1)[0]
            assert kind in ("task", "resource", "async_op", "poll"), s.name
            assert s.tags["otel.scope.name"] == "otel_asyncres", s
            parent = by_id.get(s.parent) if s.parent else None
            assert s.parent is None or parent is not None, f"{s}: parent {s.parent} not in the trace"
            for ref_type, target in s.refs:
                assert ref_type == "FOLLOWS_FROM", (s, ref_type)
                assert target in by_id, f"{s}: reference to {target}, not in the trace\n{describe(spans)}"
            referenced = {by_id[target].id for _, target in s.refs}
            if s.parent_linked:
                assert parent is not None and is_continuation(s, parent), f"{s}: FOLLOWS_FROM parent {parent}"
                assert (parent.tags["asyncio.window.index"], s.tags["asyncio.window.index"]) == (0, 1), s
            if kind == "task" and parent is not None:
                # A task's parent is the task that spawned it (or, windowed, its own earlier window).
                assert parent.name.startswith("task "), f"{s} under {parent}"
                assert parent.tags["asyncio.task.id"] in (
                    s.tags["asyncio.task.id"],
                    s.tags.get("asyncio.task.parent_id"),
                ), (s, parent)
            elif kind == "resource":
                # Its creator (or its parent resource, or its own earlier window).
                assert parent is not None and parent.name.split(" ", 1)[0] in ("task", "resource"), s
                if parent.name.startswith("task "):
                    assert parent.tags["asyncio.task.id"] == s.tags["asyncio.task.id"], (s, parent)
            elif kind == "async_op":
                # Under the awaiting task (op_parent=task, the default), or under the op of the
                # same task it was made in (a join under its gather, a wait inside a timeout).
                assert parent is not None and parent.name.split(" ", 1)[0] in ("task", "async_op"), s
                assert parent.tags["asyncio.task.id"] == s.tags["asyncio.task.id"], (s, parent)
                resource = s.tags.get("asyncio.resource.id")
                if resource in resources:
                    assert resources[resource] & referenced, f"{s}: no reference to its resource"
                awaited = s.tags.get("asyncio.awaited_task.id")
                if awaited is not None:
                    assert tasks[awaited] & referenced, f"{s}: no reference to the awaited task"
                waker = s.tags.get("asyncio.waker.task.id")
                if waker is not None:
                    assert tasks[waker] & referenced, f"{s}: no reference to the task that woke it"
            elif kind == "poll":
                assert parent is not None and parent.name.startswith("async_op "), s


def check_operations(jaeger: jaeger_build.Jaeger, service: str, traces: list[dict[str, Any]]) -> list[str]:
    """Jaeger's operation list for the service is the span names, grouped as
    docs/mapping.md names them: ``task <label>``, ``resource <type>``,
    ``async_op <source>`` with a source the mapping documents."""
    operations = jaeger.operations(service)
    assert sorted(operations) == sorted({s["operationName"] for t in traces for s in t["spans"]})
    assert len(operations) == len(set(operations))
    for name in operations:
        kind, _, rest = name.partition(" ")
        if kind == "async_op":
            assert f"`{rest}`" in MAPPING, f"{name}: not an async-op source of docs/mapping.md"
        elif kind == "resource":
            assert re.fullmatch(r"asyncio\.[A-Za-z]+", rest), name
            assert f"`resource {rest}`" in MAPPING, f"{name}: not a resource span of docs/mapping.md"
        else:
            assert kind == "task" and rest, name
    assert service in jaeger.services()
    return operations


# -- what was sent against what Jaeger shows -------------------------------------------


def jaeger_value(value: Any) -> Any:
    """An OTLP attribute value as Jaeger's API gives it back."""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    return value


def jaeger_references(span: Any) -> list[tuple[str, str]]:
    """The references Jaeger makes of a span's parent and links (its OTLP
    translator's rule): CHILD_OF the parent, FOLLOWS_FROM every link, except
    that a link to the parent itself turns the parent's reference into FOLLOWS_FROM."""
    parent = span.parent_span_id.hex()
    refs = [("CHILD_OF", parent)] if parent else []
    for link in span.links:
        target = link.span_id.hex()
        if parent and target == parent:
            refs[0] = ("FOLLOWS_FROM", parent)
        else:
            refs.append(("FOLLOWS_FROM", target))
    return refs


def check_same_as_sent(sent: list[ReceivedSpan], traces: list[dict[str, Any]]) -> None:
    """Every span sent is in Jaeger with its parent, its links as references, its
    attributes as tags of the same type, its events as logs with their attributes,
    its status as Jaeger's error tags, and nothing else."""
    shown = {s.id: s for t in traces for s in spans_of(t)}
    assert sorted(shown) == sorted(s.span.span_id.hex() for s in sent)
    trace_ids = {t["traceID"] for t in traces}
    processes = {(t["traceID"], pid): process for t in traces for pid, process in t["processes"].items()}
    for received in sent:
        span, attrs = received.span, received.attributes
        j = shown[span.span_id.hex()]
        where = f"{received.name} ({j.id})"
        # The resource is the process: its service and the rest as tags.
        process = processes[(j.raw["traceID"], j.raw["processID"])]
        resource = dict(received.resource)
        assert process["serviceName"] == resource.pop("service.name"), where
        assert {t["key"]: t["value"] for t in process["tags"]} == resource, where
        assert span.trace_id.hex() in trace_ids, where
        assert j.name == received.name, where
        assert j.parent == (span.parent_span_id.hex() or None), where
        assert all(link.trace_id == span.trace_id for link in span.links), where
        assert Counter(j.raw_refs()) == Counter(jaeger_references(span)), where
        # The parent first, as the UI expects.
        if span.parent_span_id:
            assert j.raw_refs()[0][1] == span.parent_span_id.hex(), where
        assert j.raw["startTime"] == span.start_time_unix_nano // 1000, where
        duration = (span.end_time_unix_nano - span.start_time_unix_nano) // 1000
        assert abs(j.raw["duration"] - duration) <= 1, where

        tags = {k: v for k, v in j.tags.items() if k not in DERIVED_TAGS}
        assert tags == {k: jaeger_value(v) for k, v in attrs.items()}, where
        for key, value in attrs.items():
            expected_type = "string" if isinstance(value, (list, tuple)) else JAEGER_TYPES[type(value)]
            assert j.types[key] == expected_type, (where, key)
        assert j.tags["span.kind"] == "internal", where
        if span.status.code == 2:  # ERROR
            assert j.tags.get("error") is True and j.types["error"] == "bool", where
            assert j.tags.get("otel.status_code") == "ERROR", where
            assert j.tags.get("otel.status_description") == span.status.message, where
        else:
            assert "error" not in j.tags and j.tags.get("otel.status_code") in (None, "OK"), where

        events = sorted(
            (
                (e.time_unix_nano // 1000, e.name, json.dumps(attributes(e.attributes), sort_keys=True))
                for e in span.events
            ),
        )
        logs = sorted(
            (log["timestamp"], name, json.dumps({k: v for k, v in fields.items()}, sort_keys=True))
            for log, (name, fields) in zip(j.raw["logs"] or [], j.logs, strict=True)
        )
        expected_logs = sorted(
            (t, name, json.dumps({k: jaeger_value(v) for k, v in json.loads(a).items()}, sort_keys=True))
            for t, name, a in events
        )
        assert logs == expected_logs, where


# -- the programs, each run once for the whole module ---------------------------------


@dataclass
class Run:
    """One program's run and what Jaeger shows of it."""

    service: str
    stdout: str
    #: The traces from the API Jaeger's UI reads (/api/traces/{id}).
    traces: list[dict[str, Any]]
    #: The same traces from Jaeger v2's OTLP-shaped API (/api/v3/traces/{id}).
    v3: list[dict[str, Any]]
    #: What the program sent, for relayed runs.
    sent: list[ReceivedSpan] | None = None

    def spans(self) -> list[JSpan]:
        return [s for t in self.traces for s in spans_of(t)]


def direct(jaeger: jaeger_build.Jaeger, program: Path, service: str, protocol: str, *options: str) -> Run:
    traces, stdout = run_to_jaeger(jaeger, program, service, protocol, *options)
    return Run(service, stdout, traces, [jaeger.trace_v3(t["traceID"]) for t in traces])


def relayed(jaeger: jaeger_build.Jaeger, program: Path, service: str, *options: str) -> Run:
    sent, traces = run_relayed(jaeger, program, service, *options)
    return Run(service, "", traces, [jaeger.trace_v3(t["traceID"]) for t in traces], sent)


MUTEX_OPTIONS = ("--min-task-duration", "0", "--min-wait-duration", "0", "--budget", "off")


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("programs")
    (directory / "failing.py").write_text(FAILING)
    (directory / "long.py").write_text(LONG)
    return {
        "oneshot": EXAMPLES / "oneshot.py",
        "mutex": EXAMPLES / "mutex_contention.py",
        "semaphore": EXAMPLES / "semaphore_crawler.py",
        "pipeline": EXAMPLES / "pipeline.py",
        "failing": directory / "failing.py",
        "long": directory / "long.py",
    }


#: run name -> (program, service, protocol or "relayed", options)
RUNS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "oneshot-grpc": ("oneshot", "oneshot-grpc", "grpc", ()),
    "oneshot-http": ("oneshot", "oneshot-http", "http/protobuf", ()),
    "oneshot-relayed": ("oneshot", "oneshot-relayed", "relayed", ()),
    "mutex": ("mutex", "mutex-contention", "grpc", MUTEX_OPTIONS),
    "mutex-relayed": ("mutex", "mutex-relayed", "relayed", MUTEX_OPTIONS),
    "semaphore": ("semaphore", "semaphore-crawler", "grpc", MUTEX_OPTIONS),
    "semaphore-relayed": ("semaphore", "semaphore-relayed", "relayed", MUTEX_OPTIONS),
    "pipeline": ("pipeline", "pipeline", "grpc", MUTEX_OPTIONS),
    "pipeline-relayed": ("pipeline", "pipeline-relayed", "relayed", MUTEX_OPTIONS),
    "failing": ("failing", "failing", "grpc", ()),
    "failing-relayed": ("failing", "failing-relayed", "relayed", ()),
    "long": ("long", "long", "grpc", LONG_OPTIONS),
    "long-relayed": ("long", "long-relayed", "relayed", LONG_OPTIONS),
}


@pytest.fixture(scope="module")
def runs(jaeger: jaeger_build.Jaeger, programs: dict[str, Path]) -> dict[str, Run]:
    """Every run, made on first use (a failed run fails the tests that need it)."""
    return _Runs(jaeger, programs)


class _Runs(dict):  # type: ignore[type-arg]
    def __init__(self, jaeger: jaeger_build.Jaeger, programs: dict[str, Path]) -> None:
        super().__init__()
        self.jaeger, self.programs = jaeger, programs

    def __missing__(self, name: str) -> Run:
        program, service, protocol, options = RUNS[name]
        path = self.programs[program]
        if protocol == "relayed":
            run = relayed(self.jaeger, path, service, *options)
        else:
            run = direct(self.jaeger, path, service, protocol, *options)
        self[name] = run
        return run


def run_params(names: list[str], marks: dict[str, pytest.MarkDecorator] | None = None) -> list[Any]:
    marks = marks or {}
    return [pytest.param(name, marks=[marks[name]] if name in marks else [], id=name) for name in names]


@pytest.mark.parametrize("name", run_params(list(RUNS)))
def test_structure_and_references(runs: dict[str, Run], name: str) -> None:
    """Every span's parent and references as docs/mapping.md says."""
    check_structure(runs[name].traces)


@pytest.mark.parametrize("name", run_params([n for n in RUNS if n.endswith("-relayed")]))
def test_every_span_as_sent(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert run.sent is not None
    check_same_as_sent(run.sent, run.traces)


@pytest.mark.parametrize("name", run_params(list(RUNS)))
def test_one_trace_per_program(runs: dict[str, Run], name: str) -> None:
    check_one_trace(runs[name].traces)


@pytest.mark.parametrize("name", run_params(list(RUNS)))
def test_no_warnings(runs: dict[str, Run], name: str) -> None:
    """No warning in Jaeger v2's own API (/api/v3), which tells hosts apart by
    the resource's host.name: no invalid parent, duplicate id, bad link or clock skew."""
    found = [
        f"{span['name']} ({span['spanId']}): {w}"
        for trace in runs[name].v3
        for rs in trace["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
        for attribute in span.get("attributes", [])
        if attribute["key"] == "@jaeger@warnings"
        for w in (v.get("stringValue") for v in attribute["value"]["arrayValue"]["values"])
    ]
    assert not found, "Jaeger warns:\n" + "\n".join(found)


@pytest.mark.parametrize("name", run_params(list(RUNS)))
def test_no_warnings_in_the_ui_api(runs: dict[str, Run], name: str) -> None:
    """No warning in the API Jaeger's UI reads (/api/traces/{id}). It compares
    the clocks of a parent and a child unless the two share an ``ip`` process
    tag; our resource carries one (resource_for), so a child that outlives its
    parent (a resource collected after its task ended) is no clock skew."""
    check_no_warnings(runs[name].traces)


@pytest.mark.parametrize("name", run_params(list(RUNS)))
def test_ui_api_warns_only_of_children_outside_their_parent(runs: dict[str, Run], name: str) -> None:
    """Whatever the UI's API warns about is clock skew on a span that indeed
    does not lie inside its parent: never an invalid parent, a duplicate id, a bad link."""
    unexplained, _ = ui_warnings(runs[name].traces)
    assert not unexplained, "Jaeger warns:\n" + "\n".join(unexplained)


@pytest.mark.parametrize("name", run_params(list(RUNS)))
def test_children_start_inside_their_parent(runs: dict[str, Run], name: str) -> None:
    check_children_start_inside_their_parent(runs[name].traces)


@pytest.mark.parametrize("name", run_params(list(RUNS)))
def test_operations_grouped_as_the_mapping_says(
    jaeger: jaeger_build.Jaeger, runs: dict[str, Run], name: str
) -> None:
    run = runs[name]
    check_operations(jaeger, run.service, run.traces)


@pytest.mark.parametrize("name", ["oneshot-grpc", "oneshot-http", "oneshot-relayed"])
def test_oneshot(jaeger: jaeger_build.Jaeger, runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    if run.sent is None:
        assert run.stdout == "received 5\ngood-bye\n"
    spans = run.spans()
    assert sorted(jaeger.operations(run.service)) == sorted(
        [
            "task main",
            "task tokio-oneshot",
            "task receiver",
            "task sender",
            "resource asyncio.Future",
            "async_op Future.__await__",
            "async_op Task.__await__",
            "async_op sleep",
        ]
    )
    by_name = {s.name: s for s in spans if s.name != "async_op Task.__await__"}
    oneshot, receiver, sender = (by_name[f"task {n}"] for n in ("tokio-oneshot", "receiver", "sender"))
    assert oneshot.parent == by_name["task main"].id
    assert receiver.parent == sender.parent == oneshot.id
    # The receiver's wait: under the receiver, referencing the future and the sender.
    wait = by_name["async_op Future.__await__"]
    future = by_name["resource asyncio.Future"]
    assert wait.parent == receiver.id
    assert Counter(wait.refs) == Counter([("FOLLOWS_FROM", future.id), ("FOLLOWS_FROM", sender.id)])
    assert wait.tags["asyncio.async_op.polls"] == 2 and wait.types["asyncio.async_op.polls"] == "int64"
    # Joins: main's on tokio-oneshot, tokio-oneshot's on the receiver (resource and woken_by).
    joins = {s.parent: s for s in spans if s.name == "async_op Task.__await__"}
    assert Counter(joins[oneshot.id].refs) == Counter({("FOLLOWS_FROM", receiver.id): 2})
    # Events as logs with their fields: the future's state, the receiver's wakers.
    values_sent = [f for n, f in future.logs if n == "state_update" and f.get("value_sent") is True]
    assert values_sent and values_sent[0]["value_sent.op"] == "override", future.logs
    wakes = [f for n, f in receiver.logs if n == "waker.wake"]
    assert any(f.get("asyncio.waker.task.id") == sender.tags["asyncio.task.id"] for f in wakes), receiver.logs
    assert any(n == "waker.clone" for n, _ in receiver.logs), receiver.logs
    # Tokio Console's statistics as typed tags; nothing is an error.
    assert receiver.types["asyncio.task.busy_duration"] == "float64"
    assert receiver.tags["asyncio.task.outcome"] == "ok"
    assert not any("error" in s.tags for s in spans)
    # The process: the service, and the host that tells Jaeger all spans share one clock.
    (process,) = {json.dumps(p, sort_keys=True) for t in run.traces for p in t["processes"].values()}
    tags = {t["key"]: t["value"] for t in json.loads(process)["tags"]}
    assert json.loads(process)["serviceName"] == run.service
    assert tags.get("host.name"), tags


@pytest.mark.parametrize("name", ["mutex", "mutex-relayed"])
def test_mutex_contention(jaeger: jaeger_build.Jaeger, runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    if run.sent is None:
        assert run.stdout.endswith("final balance 8 (expected 8)\n")
    spans = run.spans()
    operations = set(jaeger.operations(run.service))
    assert {f"task worker-{i}" for i in range(4)} | {"task main", "resource asyncio.Lock"} <= operations
    assert "async_op Lock.acquire" in operations
    (lock,) = [s for s in spans if s.name == "resource asyncio.Lock"]
    main = next(s for s in spans if s.name == "task main")
    assert lock.parent == main.id  # main made it
    acquires = [s for s in spans if s.name == "async_op Lock.acquire"]
    # Four workers, two rounds, FIFO: every acquire but the first waited.
    assert len(acquires) == 7, describe(spans)
    workers = {s.tags["asyncio.task.id"]: s for s in spans if s.name.startswith("task worker-")}
    for acquire in acquires:
        assert acquire.parent == workers[acquire.tags["asyncio.task.id"]].id
        assert ("FOLLOWS_FROM", lock.id) in acquire.refs
        waker = workers[acquire.tags["asyncio.waker.task.id"]]
        assert ("FOLLOWS_FROM", waker.id) in acquire.refs and waker.id != acquire.parent
    updates = [f for n, f in lock.logs if n == "state_update"]
    assert any(f.get("locked") is True and f.get("locked.op") == "override" for f in updates), updates
    assert any(f.get("waiters.op") in ("add", "sub") for f in updates), updates


@pytest.mark.parametrize("name", ["failing", "failing-relayed"])
def test_failing_task(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    if run.sent is None:
        assert run.stdout == "caught upstream said no\n"
    spans = run.spans()
    (fetch,) = [s for s in spans if s.name == "task fetch"]
    assert fetch.tags["asyncio.task.outcome"] == "error"
    assert fetch.tags["error"] is True and fetch.types["error"] == "bool"
    assert fetch.tags["otel.status_code"] == "ERROR"
    assert "ValueError" in fetch.tags["otel.status_description"]
    assert "upstream said no" in fetch.tags["otel.status_description"]
    (exception,) = [f for n, f in fetch.logs if n == "exception"]
    assert exception["exception.type"] == "ValueError"
    assert exception["exception.message"] == "upstream said no"
    assert "raise ValueError" in exception["exception.stacktrace"]
    # The join that saw it fail: main's wait on fetch, referencing it.
    (join,) = [s for s in spans if s.name == "async_op Task.__await__"]
    assert join.tags["asyncio.async_op.outcome"] == "error"
    assert ("FOLLOWS_FROM", fetch.id) in join.refs
    # main caught it: main is no error.
    (main,) = [s for s in spans if s.name == "task main"]
    assert "error" not in main.tags and main.tags["asyncio.task.outcome"] == "ok"


def windows(spans: list[JSpan], name: str) -> list[JSpan]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.tags.get("asyncio.window.index", 0))


@pytest.mark.parametrize("name", ["long", "long-relayed"])
def test_longer_than_three_windows(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    if run.sent is None:
        assert run.stdout == "done\n"
    spans = run.spans()
    mains = windows(spans, "task main")
    assert len(mains) > 3, f"{len(mains)} windows of main"
    assert [m.tags["asyncio.window.index"] for m in mains] == list(range(len(mains)))
    assert mains[-1].tags["asyncio.window.last"] is True
    for previous, window in itertools.pairwise(mains):
        # The link to the window before is a reference.
        assert ("FOLLOWS_FROM", previous.id) in window.refs, window.refs
    locks = windows(spans, "resource asyncio.Lock")
    assert len(locks) > 3, f"{len(locks)} windows of the lock"
    # Every child task is there, under a window of main.
    children = [s for s in spans if s.name.startswith("task child-")]
    assert len(children) == 12, describe(spans)
    assert {c.parent for c in children} <= {m.id for m in mains}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otel_asyncres_check_finds_jaeger_reachable(jaeger: jaeger_build.Jaeger, protocol: str) -> None:
    """deploy/jaeger/README.md's promise: ``otel-asyncres check`` works against it."""
    endpoint = jaeger.otlp_grpc if protocol == "grpc" else jaeger.otlp_http
    env = child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_METRICS_EXPORTER="none",
    )
    result = subprocess.run(
        [sys.executable, "-m", "otel_asyncres", "check"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    traces_endpoint = endpoint + ("/v1/traces" if protocol != "grpc" else "")
    assert result.stdout.splitlines()[-1].startswith(f"otlp: {traces_endpoint} ({protocol}): reachable")


def test_the_built_jaeger_serves_a_placeholder_for_its_ui(jaeger: jaeger_build.Jaeger) -> None:
    """A build from the module proxy has no UI assets (they are built from
    jaeger-ui into the Docker image): docs/guide.md says where the pictures come from."""
    page = jaeger.text("/")
    assert "This is not the Jaeger UI you are looking for" in page
    assert "Docker image" in (ROOT / "docs" / "guide.md").read_text()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("semaphore", {"resource asyncio.Semaphore", "async_op Semaphore.acquire", "async_op sleep"}),
        (
            "pipeline",
            {"resource asyncio.Queue", "async_op Queue.put", "async_op Queue.get", "async_op Queue.join"},
        ),
    ],
)
def test_contention_examples_operations(
    jaeger: jaeger_build.Jaeger, runs: dict[str, Run], name: str, expected: set[str]
) -> None:
    """The spans the examples' docstrings tell people to look for, in Jaeger's operation list."""
    run = runs[name]
    assert expected <= set(jaeger.operations(run.service))
    for span in run.spans():
        if span.name in ("async_op Semaphore.acquire", "async_op Queue.put", "async_op Queue.get"):
            # Woken by the task on the other side, which it references.
            waker = span.tags["asyncio.waker.task.id"]
            targets = {
                s.tags["asyncio.task.id"]
                for s in run.spans()
                if s.name.startswith("task ") and ("FOLLOWS_FROM", s.id) in span.refs
            }
            assert waker in targets, span
