"""The benchmark harness: ``python -m benchmarks`` (from the repository root).

Runs every selected workload in every selected mode, each measured
configuration in a fresh child process, interleaved: round after round, and in
each round each workload in every mode, the order of the modes rotating from
round to round, so that the drift of a shared, noisy machine falls on all modes
alike. Prints one table of ratios against the plain run (medians; the range is
that of the ratios of paired samples, taken in the same round), spans exported
per second, memory, then the memory micro-benchmark (bytes per live task and
primitive, and per finished one) and the targets met or missed.

``--quick`` is a smoke run (~30 s); ``--markdown`` prints Markdown;
``--update-doc docs/performance.md`` rewrites that file's results section;
``--profile WORKLOAD:MODE`` profiles one configuration instead.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .child import RESULT_PREFIX
from .modes import BASELINE, DEFAULT_BSP_QUEUE, MODES, otel_asyncio_available
from .workloads import WORKLOADS

ROOT = Path(__file__).resolve().parent.parent

#: The workloads of ``--quick`` (unless ``--workloads`` says otherwise).
QUICK_WORKLOADS = ("async_tree_none", "lock", "queue", "short_tasks", "echo_server")
QUICK_SCALE = 0.05

#: (mode, workload pattern, limit on the median wall-time ratio): issue 11's targets.
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("sampled-out", "async_tree_*", 1.10),
    ("sampled-out", "group:contention", 1.2),
    ("sampled-out", "short_tasks", 1.2),
    ("export", "async_tree_none", 1.5),
    ("export", "async_tree_eager_none", 1.5),
    ("export", "async_tree_io", 1.2),
    ("export", "async_tree_memoization", 1.2),
    ("export", "async_tree_cpu_io_mixed", 1.2),
    ("export", "async_tree_eager_io", 1.2),
    ("export", "async_tree_eager_memoization", 1.2),
    ("export", "async_tree_eager_cpu_io_mixed", 1.2),
    ("export", "group:contention", 1.5),
    ("export", "short_tasks", 1.5),
    ("export", "echo_server", 1.2),
)
#: Memory over plain, per live task and per live primitive (bytes); and left
#: per finished task.
MEMORY_TARGETS = {"live_tasks": 1024, "live_locks": 200, "after_tasks": 0}

DOC_START = "<!-- benchmark-results:start -->"
DOC_END = "<!-- benchmark-results:end -->"


# -- running children ---------------------------------------------------------------------------


#: A source tree of otel_asyncres to benchmark instead of the installed one (``--commit``).
SOURCE_OVERRIDE: Path | None = None
SOURCE_COMMIT = ""


def child_env() -> dict[str, str]:
    """This environment without OTEL_* settings, with the repository importable
    (and ``--commit``'s copy of the package first on the path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    paths = [str(SOURCE_OVERRIDE)] if SOURCE_OVERRIDE else []
    paths += [str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.pop("PYTHONWARNINGS", None)
    return env


@dataclass
class ChildResult:
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""
    seconds: float = 0.0
    returncode: int = 0


def run_child(python: str, spec: dict[str, Any], timeout: float, wrapper: Sequence[str] = ()) -> ChildResult:
    cmd = [*wrapper, python, "-m", "benchmarks.child", json.dumps(spec)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return ChildResult(False, {}, f"timed out after {timeout:.0f} s\n{stderr}", timeout, -1)
    seconds = time.perf_counter() - started
    data: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
    return ChildResult(proc.returncode == 0 and bool(data), data, proc.stderr, seconds, proc.returncode)


class Receiver:
    """The counting OTLP/gRPC receiver, in its own process."""

    def __init__(self, python: str) -> None:
        self.proc = subprocess.Popen(
            [python, "-m", "benchmarks.receiver"],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.close()
            raise RuntimeError("the OTLP receiver did not start")
        self.endpoint = f"127.0.0.1:{line[1]}"

    def count(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline().split()[0])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- selection ----------------------------------------------------------------------------------------


def select_workloads(patterns: str | None) -> list[str]:
    if not patterns:
        return list(WORKLOADS)
    chosen: list[str] = []
    for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
        if pattern.startswith("group:"):
            matches = [n for n, w in WORKLOADS.items() if w.group == pattern[6:]]
        else:
            matches = [n for n in WORKLOADS if fnmatch.fnmatchcase(n, pattern)]
        if not matches:
            raise SystemExit(f"no workload matches {pattern!r}; see --list")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def select_modes(names: str | None) -> list[str]:
    if not names:
        chosen = [n for n, m in MODES.items() if m.default]
    else:
        chosen = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in MODES]
        if unknown:
            raise SystemExit(f"unknown mode {unknown[0]!r}; modes: {', '.join(MODES)}")
    if BASELINE not in chosen:
        chosen.insert(0, BASELINE)
    return chosen


def matches_target(workload: str, pattern: str) -> bool:
    if pattern.startswith("group:"):
        return WORKLOADS[workload].group == pattern[6:]
    return fnmatch.fnmatchcase(workload, pattern)


# -- statistics -----------------------------------------------------------------------------------------

METRICS = ("wall", "cpu", "loop")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _pairs(samples: Sequence[dict[str, Any]], plain: Sequence[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """Samples paired with the plain samples of the same round, in order."""
    by_round: dict[Any, list[dict[str, Any]]] = {}
    for p in plain:
        by_round.setdefault(p.get("round"), []).append(p)
    pairs = []
    taken: dict[Any, int] = {}
    for s in samples:
        rnd = s.get("round")
        i = taken.get(rnd, 0)
        if i < len(by_round.get(rnd, [])):
            pairs.append((s, by_round[rnd][i]))
            taken[rnd] = i + 1
    return pairs


def summarize(results: dict[str, dict[str, Any]], modes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per workload and mode: medians, ratios to plain and the range of paired ratios."""
    summary: dict[str, dict[str, Any]] = {}
    for workload, by_mode in results.items():
        plain = by_mode.get(BASELINE, {})
        plain_samples = plain.get("samples", [])
        rows: dict[str, Any] = {}
        for mode in modes:
            entry = by_mode.get(mode, {})
            samples = entry.get("samples", [])
            row: dict[str, Any] = {"skipped": entry.get("skipped"), "n": len(samples)}
            if samples:
                for metric in METRICS:
                    row[metric] = _median([s[metric] for s in samples])
                spans = _median([s["spans"] for s in samples])
                exported = sum(s["exported"] for s in samples)
                wall = sum(s["wall"] for s in samples)
                row["spans"] = spans
                row["spans_per_s"] = exported / wall if exported and wall > 0 else None
                row["dropped"] = sum(max(s["spans"] - s["exported"] - s["failed"], 0) for s in samples)
                row["failed"] = sum(s["failed"] for s in samples)
                row["handoff_dropped"] = _median([s.get("handoff_dropped", 0) for s in samples])
                row["growth_mb"] = _median([max(s["rss_peak_mb"] - s["rss_before_mb"], 0.0) for s in samples])
                row["peak_mb"] = _median([s["rss_peak_mb"] for s in samples])
                if plain_samples:
                    for metric in METRICS:
                        base = _median([s[metric] for s in plain_samples])
                        row[f"{metric}_ratio"] = row[metric] / base if base > 0 else None
                        paired = [
                            s[metric] / p[metric] for s, p in _pairs(samples, plain_samples) if p[metric] > 0
                        ]
                        row[f"{metric}_range"] = (min(paired), max(paired)) if paired else None
                    base_growth = _median(
                        [max(p["rss_peak_mb"] - p["rss_before_mb"], 0.0) for p in plain_samples]
                    )
                    row["plain_growth_mb"] = base_growth
                    base_cpu = _median([p["cpu"] for p in plain_samples])
                    if spans >= 1000:  # fewer: the figure is noise
                        row["cpu_us_per_span"] = (row["cpu"] - base_cpu) / spans * 1e6
            rows[mode] = row
        summary[workload] = rows
    return summary


# -- formatting -----------------------------------------------------------------------------------------


def _ratio_cell(row: dict[str, Any], metric: str) -> str:
    ratio = row.get(f"{metric}_ratio")
    if ratio is None:
        return "-"
    spread = row.get(f"{metric}_range")
    if spread and row.get("n", 0) > 1:
        return f"{ratio:.2f}x ({spread[0]:.2f}-{spread[1]:.2f})"
    return f"{ratio:.2f}x"


def _seconds_cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def _count(value: float | None) -> str:
    if not value:
        return "-"
    if value >= 10000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}"


def _memory_cell(row: dict[str, Any], mode: str) -> str:
    growth = row.get("growth_mb")
    if growth is None:
        return "-"
    text = f"+{growth:.0f} MB"
    base = row.get("plain_growth_mb")
    if mode != BASELINE and base and base >= 2.0:
        text += f" ({growth / base:.1f}x)"
    return text


def results_table(summary: dict[str, dict[str, Any]], modes: Sequence[str]) -> list[list[str]]:
    header = [
        "workload",
        "mode",
        "wall",
        "CPU",
        "loop only",
        "spans/run",
        "spans/s",
        "extra CPU µs/span",
        "RSS growth",
    ]
    rows = [header]
    for workload, by_mode in summary.items():
        for mode in modes:
            row = by_mode.get(mode, {})
            if row.get("skipped"):
                rows.append([workload, mode, f"skipped: {row['skipped']}", "", "", "", "", "", ""])
                continue
            if not row.get("n"):
                rows.append([workload, mode, "no result", "", "", "", "", "", ""])
                continue
            if mode == BASELINE:
                cells = [_seconds_cell(row.get(m)) for m in METRICS]
            else:
                cells = [_ratio_cell(row, m) for m in METRICS]
            spans = _count(row.get("spans"))
            if row.get("dropped"):
                spans += f" ({_count(row['dropped'])} dropped)"
            if row.get("handoff_dropped"):
                spans += f" ({_count(row['handoff_dropped'])} folded: hand-off full)"
            rate = row.get("spans_per_s")
            rows.append(
                [
                    workload,
                    mode,
                    *cells,
                    spans,
                    f"{rate / 1000:.1f}k" if rate else "-",
                    f"{row['cpu_us_per_span']:.0f}" if row.get("cpu_us_per_span") else "-",
                    _memory_cell(row, mode),
                ]
            )
    return rows


def render(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for i, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _verdict(wall_ok: bool, cpu_ok: bool) -> str:
    if wall_ok and cpu_ok:
        return "yes"
    if wall_ok or cpu_ok:
        return "wall only" if wall_ok else "CPU only"
    return "no"


def targets_table(
    summary: dict[str, dict[str, Any]], micro: dict[str, Any]
) -> tuple[list[list[str]], list[str]]:
    rows = [["target", "workload", "measured (wall / CPU)", "met"]]
    for mode, pattern, limit in TARGETS:
        for workload, by_mode in summary.items():
            if not matches_target(workload, pattern):
                continue
            row = by_mode.get(mode, {})
            ratio = row.get("wall_ratio")
            if ratio is None:
                continue
            cpu = row.get("cpu_ratio")
            rows.append(
                [
                    f"{mode} <= {limit}x",
                    workload,
                    f"{ratio:.2f}x / {cpu:.2f}x" if cpu is not None else f"{ratio:.2f}x",
                    _verdict(ratio <= limit, cpu is None or cpu <= limit),
                ]
            )
    for workload, by_mode in summary.items():
        mine = by_mode.get("detailed", {}).get("cpu_us_per_span")
        theirs = by_mode.get("otel-asyncio", {}).get("cpu_us_per_span")
        if mine is not None and theirs is not None:
            rows.append(
                [
                    "detailed: extra CPU per span <= otel-asyncio's",
                    workload,
                    f"{mine:.0f} µs / {theirs:.0f} µs",
                    "yes" if mine <= theirs else "no",
                ]
            )
    rows += _memory_targets(micro.get("memory", {}))
    notes = []
    if len(rows) == 1:
        notes.append("(no target applies to the selection)")
    return rows, notes


def _memory_targets(memory: dict[str, Any]) -> list[list[str]]:
    """Bytes per entity over plain, against MEMORY_TARGETS, for each mode measured."""
    plain = memory.get(BASELINE)
    if plain is None:
        return []
    n = plain["n"]
    labels = {
        "live_tasks": "per live task",
        "live_locks": "per live primitive (a held Lock)",
        "after_tasks": "left per finished task",
    }
    rows = []
    for mode, m in memory.items():
        if mode == BASELINE:
            continue
        for key, limit in MEMORY_TARGETS.items():
            extra = (m[key]["total"] - plain[key]["total"]) / n
            rows.append(
                [
                    f"memory {labels[key]} <= +{limit} B",
                    mode,
                    f"+{extra:.0f} B",
                    "yes" if extra <= limit else "no",
                ]
            )
    return rows


def micro_tables(micro: dict[str, Any]) -> list[tuple[str, list[list[str]]]]:
    tables = []
    memory = micro.get("memory", {})
    if BASELINE in memory and len(memory) > 1:
        plain = memory[BASELINE]
        n = plain["n"]
        rows = [
            [
                "mode",
                "per live task",
                "of which otel_asyncres / opentelemetry",
                "left per finished task",
                "per live Lock (held)",
                "of which otel_asyncres / opentelemetry",
                "left per released Lock",
            ]
        ]
        for mode, m in memory.items():

            def per(key: str, part: str = "total", m: dict[str, Any] = m) -> float:
                return float(m[key][part]) / n

            rows.append(
                [
                    mode,
                    f"{per('live_tasks'):.0f} B"
                    + (
                        ""
                        if mode == BASELINE
                        else f" (+{per('live_tasks') - plain['live_tasks']['total'] / n:.0f})"
                    ),
                    f"{per('live_tasks', 'otel_asyncres'):.0f} / {per('live_tasks', 'opentelemetry'):.0f} B",
                    f"{per('after_tasks'):.0f} B",
                    f"{per('live_locks'):.0f} B"
                    + (
                        ""
                        if mode == BASELINE
                        else f" (+{per('live_locks') - plain['live_locks']['total'] / n:.0f})"
                    ),
                    f"{per('live_locks', 'otel_asyncres'):.0f} / {per('live_locks', 'opentelemetry'):.0f} B",
                    f"{per('after_locks'):.0f} B",
                ]
            )
        tables.append((f"Memory (tracemalloc, {n:,} live tasks parked on an Event; {n:,} Locks held)", rows))
    return tables


def export_commit(rev: str, into: Path) -> str:
    """Extract src/ of a commit into ``into``; return the commit's short hash."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev + "^{commit}"], cwd=ROOT, capture_output=True, text=True
    )
    if commit.returncode != 0:
        raise SystemExit(f"--commit {rev}: {commit.stderr.strip()}")
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return commit.stdout.strip()


def source_state() -> str:
    """The commit of the code under test, and whether src/ differs from it."""
    if SOURCE_OVERRIDE is not None:
        return f"{SOURCE_COMMIT} (--commit, extracted)"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (src/ modified)" if dirty else "")


def machine_line() -> str:
    try:
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load}"
    )


# -- the harness ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Overhead of otel_asyncres (and of opentelemetry-instrumentation-asyncio) "
        "against plain asyncio, each configuration in a fresh process.",
    )
    p.add_argument("--workloads", help="comma list of names, globs (async_tree_*) or group:NAME")
    p.add_argument("--modes", help=f"comma list of modes (default: all): {', '.join(MODES)}")
    p.add_argument("--rounds", type=int, help="child processes per configuration, interleaved (default 3)")
    p.add_argument("--runs", type=int, help="measured runs per child process (default 1)")
    p.add_argument("--warmup", type=float, help="scale of the warm-up run in each child, 0 for none (0.2)")
    p.add_argument("--scale", type=float, help="work per run, 1.0 = the issue's sizes (default 1.0)")
    p.add_argument("--quick", action="store_true", help="smoke run: small scale, one round, few workloads")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--python", default=sys.executable, help="interpreter for the child processes")
    p.add_argument(
        "--commit",
        metavar="REV",
        help="benchmark src/ as of this git revision (extracted to a temporary directory) "
        "instead of the working tree",
    )
    p.add_argument(
        "--bsp-queue",
        type=int,
        default=DEFAULT_BSP_QUEUE,
        help="BatchSpanProcessor max_queue_size in the exporting modes (0: the SDK default, 2048)",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds a child may take")
    p.add_argument("--no-micro", action="store_true", help="skip the memory micro-benchmark")
    p.add_argument("--micro-only", action="store_true", help="only the micro-benchmarks")
    p.add_argument("--json", type=Path, help="write every sample and the summary to this file")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--update-doc", type=Path, help="rewrite the results section of this Markdown file")
    p.add_argument("--profile", metavar="WORKLOAD:MODE", help="profile one configuration instead")
    p.add_argument("--profiler", choices=("auto", "py-spy", "cprofile"), default="auto")
    p.add_argument("--top", type=int, default=20, help="functions shown by --profile")
    p.add_argument("--profile-out", type=Path, help="keep the raw profile (py-spy raw or pstats) here")
    p.add_argument("--from-json", type=Path, help="print the report of a --json file instead of running")
    p.add_argument("--list", action="store_true", help="list workloads and modes")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    quick = args.quick
    if args.rounds is None:
        args.rounds = 1 if quick else 3
    if args.runs is None:
        args.runs = 1
    if args.warmup is None:
        args.warmup = 0.0 if quick else 0.2
    if args.scale is None:
        args.scale = QUICK_SCALE if quick else 1.0
    if quick and not args.workloads:
        args.workloads = ",".join(QUICK_WORKLOADS)
    return args


def list_all() -> None:
    print("workloads:")
    for name, w in WORKLOADS.items():
        extra = f"  [unavailable: {w.unavailable}]" if w.unavailable else ""
        print(f"  {name:32} {w.group:11} {w.description}{extra}")
    print("modes:")
    for name, m in MODES.items():
        print(f"  {name:14} {m.description}{'' if m.default else '  (not in the default set)'}")


class Progress:
    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.done = 0
        self.quiet = quiet
        self.started = time.perf_counter()

    def __call__(self, text: str) -> None:
        self.done += 1
        if not self.quiet:
            elapsed = time.perf_counter() - self.started
            print(f"[{self.done}/{self.total} {elapsed:6.0f}s] {text}", file=sys.stderr, flush=True)


def _stderr_problems(where: str, stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    if not lines:
        return []
    unique = list(dict.fromkeys(lines))
    shown = unique[:6]
    more = f" (+{len(unique) - len(shown)} more distinct lines)" if len(unique) > len(shown) else ""
    return [f"{where}: stderr: " + " | ".join(shown) + more]


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    workloads = select_workloads(args.workloads)
    modes = select_modes(args.modes)
    problems: list[str] = []
    skipped_modes: dict[str, str] = {}
    if "otel-asyncio" in modes:
        reason = otel_asyncio_available() if args.python == sys.executable else None
        if reason:
            skipped_modes["otel-asyncio"] = reason
    results: dict[str, dict[str, Any]] = {w: {} for w in workloads}
    runnable = []
    for w in workloads:
        if WORKLOADS[w].unavailable:
            for m in modes:
                results[w][m] = {"skipped": WORKLOADS[w].unavailable}
            continue
        runnable.append(w)
        for m, reason in skipped_modes.items():
            results[w][m] = {"skipped": reason}
    active = [m for m in modes if m not in skipped_modes]
    micro_specs = [] if args.no_micro else micro_plan(args)
    if args.micro_only:
        runnable = []
    total = len(runnable) * len(active) * args.rounds + len(micro_specs)
    progress = Progress(total, args.quiet)
    receiver = None
    if runnable and any(MODES[m].needs_receiver for m in active):
        receiver = Receiver(args.python)
    started = time.time()
    load_before = machine_line()
    source_before = source_state()
    try:
        for rnd in range(args.rounds):
            order = active[rnd % len(active) :] + active[: rnd % len(active)]
            for w in runnable:
                for m in order:
                    spec = {
                        "kind": "workload",
                        "workload": w,
                        "mode": m,
                        "scale": args.scale,
                        "warmup": args.warmup,
                        "runs": args.runs,
                        "loop": args.loop,
                        "bsp_queue": args.bsp_queue,
                        "endpoint": receiver.endpoint if receiver and MODES[m].needs_receiver else None,
                    }
                    received_before = receiver.count() if receiver and MODES[m].needs_receiver else 0
                    res = run_child(args.python, spec, args.timeout)
                    entry = results[w].setdefault(m, {"samples": []})
                    where = f"{w} / {m} (round {rnd + 1})"
                    if not res.ok:
                        problems.append(
                            f"{where}: child failed (exit {res.returncode}): {res.stderr.strip()[-1500:]}"
                        )
                        progress(f"{w:28} {m:13} FAILED")
                        continue
                    samples = res.data["samples"]
                    for s in samples:
                        s["round"] = rnd
                    entry["samples"].extend(samples)
                    problems += _stderr_problems(where, res.stderr)
                    if res.data.get("internal_errors"):
                        problems.append(
                            f"{where}: otel_asyncres internal errors {res.data['internal_errors']}"
                        )
                    exported = sum(s["exported"] for s in samples)
                    ended = sum(s["spans"] for s in samples)
                    failed = sum(s["failed"] for s in samples)
                    if ended > exported + failed:
                        problems.append(f"{where}: {ended - exported - failed} of {ended} spans dropped")
                    if failed:
                        problems.append(f"{where}: {failed} spans failed to export")
                    dropped = sum(s.get("handoff_dropped", 0) for s in samples)
                    if dropped:
                        problems.append(f"{where}: otel_asyncres's hand-off was full {dropped} times")
                    if receiver and MODES[m].needs_receiver:
                        received = receiver.count() - received_before
                        sent = res.data.get("exported_total", exported)
                        if received != sent:
                            problems.append(f"{where}: the receiver got {received} spans, {sent} were sent")
                    if args.json:  # what is done so far survives an interrupted run
                        partial = assemble(
                            args,
                            workloads,
                            modes,
                            results,
                            {},
                            problems,
                            started,
                            load_before,
                            source_before,
                            True,
                        )
                        args.json.write_text(json.dumps(partial, indent=1) + "\n")
                    last = samples[-1]
                    progress(
                        f"{w:28} {m:13} wall {last['wall']:7.3f}s cpu {last['cpu']:7.3f}s "
                        f"spans {last['spans']:>7} (child {res.seconds:.1f}s)"
                    )
        micro = run_micro(args, micro_specs, progress, problems)
    finally:
        if receiver is not None:
            receiver.close()
    return assemble(args, workloads, modes, results, micro, problems, started, load_before, source_before)


def assemble(
    args: argparse.Namespace,
    workloads: list[str],
    modes: list[str],
    results: dict[str, dict[str, Any]],
    micro: dict[str, Any],
    problems: list[str],
    started: float,
    load_before: str,
    source_before: str,
    partial: bool = False,
) -> dict[str, Any]:
    return {
        "meta": {
            "date": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            "command": "python -m benchmarks " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "machine_before": load_before,
            "machine_after": machine_line(),
            "source": source_before,
            "source_after": source_before if partial else source_state(),
            "python": args.python,
            "loop": args.loop,
            "rounds": args.rounds,
            "runs": args.runs,
            "scale": args.scale,
            "warmup": args.warmup,
            "bsp_queue": args.bsp_queue,
            "seconds": round(time.time() - started, 1),
            "partial": partial,
        },
        "workloads": workloads,
        "modes": modes,
        "results": results,
        "summary": summarize(results, modes),
        "micro": micro,
        "problems": problems,
    }


def micro_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    small = args.scale < 1.0
    n = 10000 if not small else max(200, round(10000 * args.scale))
    return [{"kind": "memory", "mode": m, "n": n} for m in (BASELINE, "export-null")]


def run_micro(
    args: argparse.Namespace, specs: list[dict[str, Any]], progress: Progress, problems: list[str]
) -> dict[str, Any]:
    micro: dict[str, Any] = {"memory": {}}
    for spec in specs:
        res = run_child(args.python, spec, args.timeout)
        label = f"micro {spec['kind']} {spec.get('workload') or spec.get('mode')}"
        if not res.ok:
            problems.append(f"{label}: child failed (exit {res.returncode}): {res.stderr.strip()[-1500:]}")
            progress(f"{label} FAILED")
            continue
        problems += _stderr_problems(label, res.stderr)
        micro["memory"][spec["mode"]] = res.data
        progress(f"{label} ({res.seconds:.1f}s)")
    return micro


def report(data: dict[str, Any], markdown: bool) -> str:
    meta = data["meta"]
    out: list[str] = []
    heading = "### " if markdown else ""
    command = f"`{meta['command']}`" if markdown else meta["command"]
    out.append(f"Run started {meta['date']}: {command}")
    out.append("")
    out.append(
        f"Machine: {meta['machine_before']} at the start, {meta['machine_after'].split('load average ')[-1]} "
        f"at the end. {meta['rounds']} round(s) x {meta['runs']} run(s) per configuration, scale "
        f"{meta['scale']:g}, loop {meta['loop']}, BatchSpanProcessor queue "
        f"{meta['bsp_queue'] or 'SDK default'}; {meta['seconds']:.0f} s in all."
    )
    if "source" in meta:
        changed = (
            ""
            if meta["source"] == meta["source_after"]
            else f" at the start, {meta['source_after']} at the end"
        )
        out.append(f"Code under test: commit {meta['source']}{changed}.")
    if meta.get("partial"):
        out.append("PARTIAL: the run was interrupted; these are the configurations it finished.")
    out.append("")
    if data["summary"]:
        out.append(f"{heading}Ratios to plain (median, range of paired ratios)")
        out.append("")
        out.append(
            "plain rows: absolute medians. wall and CPU include the flush that turns the run's records "
            "into spans and exports them; 'loop only' is the time until the workload returned. "
            "CPU is the whole measured process (all threads). RSS growth: peak RSS during a run over "
            "RSS before it."
        )
        out.append("")
        out.append(render(results_table(data["summary"], data["modes"]), markdown))
        out.append("")
    for title, rows in micro_tables(data["micro"]):
        out.append(f"{heading}{title}")
        out.append("")
        out.append(render(rows, markdown))
        out.append("")
    rows, notes = targets_table(data["summary"], data["micro"])
    if len(rows) > 1:
        out.append(f"{heading}Targets (median wall-time and CPU-time ratios)")
        out.append("")
        out.append(render(rows, markdown))
        out.append("")
    out += notes
    if data["problems"]:
        out.append(f"{heading}Problems seen")
        out.append("")
        out += [f"- {p}" for p in data["problems"]]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def update_doc(path: Path, text: str) -> None:
    doc = path.read_text()
    start, end = doc.find(DOC_START), doc.find(DOC_END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: no {DOC_START} ... {DOC_END} section to update")
    path.write_text(doc[: start + len(DOC_START)] + "\n" + text + doc[end:])


# -- profiling ----------------------------------------------------------------------------------------


def _py_spy(python: str) -> str | None:
    candidate = Path(python).parent / "py-spy"
    if candidate.exists():
        return str(candidate)
    return shutil.which("py-spy")


def profile(args: argparse.Namespace) -> int:
    workload, _, mode = args.profile.partition(":")
    if workload not in WORKLOADS or mode not in MODES:
        raise SystemExit("--profile WORKLOAD:MODE, e.g. async_tree_none:export; see --list")
    profiler = args.profiler
    spy = _py_spy(args.python)
    if profiler == "auto":
        profiler = "py-spy" if spy else "cprofile"
    receiver = Receiver(args.python) if MODES[mode].needs_receiver else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "profile"
            spec: dict[str, Any] = {
                "kind": "workload",
                "workload": workload,
                "mode": mode,
                "scale": args.scale,
                "warmup": 0,
                "runs": 1,
                "loop": args.loop,
                "bsp_queue": args.bsp_queue,
                "endpoint": receiver.endpoint if receiver else None,
            }
            wrapper: list[str] = []
            if profiler == "py-spy":
                if not spy:
                    raise SystemExit("py-spy not found (pip install py-spy)")
                wrapper = [spy, "record", "--gil", "--full-filenames", "-r", "200", "--format", "raw"]
                wrapper += ["-o", str(out), "--"]
            else:
                spec["profile"] = str(out)
            res = run_child(args.python, spec, args.timeout, wrapper)
            if not res.ok:
                print(res.stderr, file=sys.stderr)
                return 1
            sample = res.data["samples"][0]
            print(
                f"{workload} / {mode}: wall {sample['wall']:.3f} s, cpu {sample['cpu']:.3f} s, "
                f"{sample['spans']} spans ({profiler})\n"
            )
            text = (
                summarize_py_spy(out, args.top) if profiler == "py-spy" else summarize_cprofile(out, args.top)
            )
            if args.profile_out:
                shutil.copyfile(out, args.profile_out)
            print(text)
    finally:
        if receiver is not None:
            receiver.close()
    return 0


def _package(filename: str) -> str:
    if "/otel_asyncres/" in filename:
        return "otel_asyncres"
    if "/opentelemetry/" in filename:
        if "/exporter/" in filename or "/proto/" in filename:
            return "opentelemetry exporter (OTLP encoding)"
        return "opentelemetry SDK/API"
    if "/grpc/" in filename or "/google/protobuf/" in filename:
        return "grpc/protobuf"
    if "/asyncio/" in filename:
        return "asyncio"
    if "/benchmarks/" in filename:
        return "workload"
    return "other (stdlib, threading, gc...)"


def _thread_role(frames: Sequence[str]) -> str:
    text = ";".join(frames)
    if "Recorder._run" in text or "_drain" in text:
        return "shown entities to spans: the bridge and the SDK (hand-off thread, or the flush)"
    if "_shared_internal" in text:
        return "export: BatchSpanProcessor, OTLP encoding, gRPC (its thread, or the flush)"
    if "run_workload" in text:
        return "event loop: the workload, asyncio and the instrumentation's hooks"
    return "other"


def _table(title: str, counts: dict[str, float], total: float, top: int) -> list[str]:
    lines = [title]
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f}%  {name}")
    return lines


def _frame(frame: str) -> tuple[str, str]:
    """A py-spy frame ``func (file:line)`` as (``func (short file)``, file)."""
    func, _, where = frame.partition(" (")
    filename = where.rsplit(":", 1)[0]
    return f"{func} ({filename.split('/site-packages/')[-1].split('/src/')[-1]})", filename


def summarize_py_spy(path: Path, top: int) -> str:
    roles: dict[str, float] = {}
    packages: dict[str, float] = {}
    ours: dict[str, float] = {}
    ours_inclusive: dict[str, float] = {}
    overall: dict[str, float] = {}
    total = 0.0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any("_find_and_load" in f for f in frames):
            continue  # imports, before the measured run
        n = float(count)
        total += n
        name, filename = _frame(frames[-1])
        role = _thread_role(frames)
        roles[role] = roles.get(role, 0) + n
        pkg = _package(filename)
        packages[pkg] = packages.get(pkg, 0) + n
        overall[name] = overall.get(name, 0) + n
        if pkg == "otel_asyncres":
            ours[name] = ours.get(name, 0) + n
        for frame in reversed(frames):
            caller, caller_file = _frame(frame)
            if _package(caller_file) == "otel_asyncres" and "Recorder." not in caller:
                ours_inclusive[caller] = ours_inclusive.get(caller, 0) + n
                break
    if not total:
        return "(no samples)"
    lines = [f"{total:.0f} samples of the thread holding the GIL (py-spy --gil)", ""]
    lines += _table("by thread:", roles, total, top)
    lines += ["", *_table("by package of the function running (own time):", packages, total, top)]
    lines += ["", *_table(f"top {top} functions of otel_asyncres by own time:", ours, total, top)]
    lines += [
        "",
        *_table(
            f"top {top} functions of otel_asyncres by the time spent in them and in what they call "
            "outside the package (SDK, stdlib), each sample counted once, at the innermost "
            "otel_asyncres frame:",
            ours_inclusive,
            total,
            top,
        ),
    ]
    lines += ["", *_table(f"top {top} functions overall by own time:", overall, total, top)]
    return "\n".join(lines)


def summarize_cprofile(path: Path, top: int) -> str:
    import pstats

    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    packages: dict[str, float] = {}
    ours: dict[str, float] = {}
    overall: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in entries.items():
        pkg = _package(filename)
        packages[pkg] = packages.get(pkg, 0) + tottime
        name = f"{func} ({filename.split('/site-packages/')[-1].split('/src/')[-1]})"
        overall[name] = overall.get(name, 0) + tottime
        if pkg == "otel_asyncres":
            ours[name] = ours.get(name, 0) + tottime
    lines = [f"cProfile, {total:.2f} s of own time in all", ""]
    lines += _table("by package (own time):", packages, total, top)
    lines += ["", *_table(f"top {top} functions of otel_asyncres by own time:", ours, total, top)]
    lines += ["", *_table(f"top {top} functions overall by own time:", overall, total, top)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    global SOURCE_OVERRIDE, SOURCE_COMMIT
    args = parse_args(argv)
    if args.list:
        list_all()
        return 0
    if args.commit:
        with tempfile.TemporaryDirectory(prefix="otel-asyncres-bench-") as tmp:
            SOURCE_COMMIT = export_commit(args.commit, Path(tmp))
            SOURCE_OVERRIDE = Path(tmp) / "src"
            return _main(args)
    return _main(args)


def _main(args: argparse.Namespace) -> int:
    if args.profile:
        return profile(args)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        data["summary"] = summarize(data["results"], data["modes"])  # with this version's columns
    else:
        data = run_suite(args)
    if args.json and not args.from_json:
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    text = report(data, args.markdown or bool(args.update_doc))
    if args.update_doc:
        update_doc(args.update_doc, text)
    sys.stdout.write(text)
    return 0
