"""CPython's own asyncio tests, plain and under ``otel-asyncres run``.

``python -m benchmarks.cpython_asyncio`` (from the repository root) runs
``python -m test test_asyncio --junit-xml ...`` once per mode:

- ``plain``: the interpreter alone (the reference);
- ``none``: ``python -m otel_asyncres run --exporter none -m test ...``;
- ``console``: ``python -m otel_asyncres run --exporter console -m test ...``
  (the console view goes to stderr at exit: proof that the bootstrap ran);
- ``otlp`` (not by default): OTLP/gRPC to a throwaway counting receiver
  (``benchmarks/receiver.py``).

It reads every test's outcome (pass, fail, error, skip, xfail, xpass) from
the JUnit XML regrtest writes, and regrtest's per-file verdicts (failed, env
changed, ...) from its summary, then prints every test and every test file
whose outcome differs from the plain run, the wall times and their ratio.
Exit status: 0 when every mode matches the plain run, 1 otherwise.

The tests run serially in the launched process: with ``-jN`` regrtest would
run them in worker processes, and ``otel-asyncres run`` instruments only the
process it launches (its ``sitecustomize`` bootstrap removes itself from the
environment, so children run plain), which would compare plain with plain.

``--python`` picks the interpreter (3.10 to 3.13; it needs otel_asyncres and
CPython's ``test`` package installed), ``-k``/``--match`` is regrtest's
``-m`` (a test-name pattern, repeatable), ``--tests`` the test packages or
modules (``test_asyncio.test_locks``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .run import Receiver

ROOT = Path(__file__).resolve().parent.parent
MODES = ("plain", "none", "console", "otlp")
DEFAULT_MODES = ("plain", "none", "console")

#: regrtest's summary: a heading such as "2 tests skipped:" or "1 test altered
#: the execution environment:", followed by indented test-file names.
_SUMMARY_HEADING = re.compile(r"^(\d+|All \d+) tests? (.+):$")
_VERDICTS = {
    "failed": "failed",
    "altered the execution environment": "env changed",
    "altered the execution environment (env changed)": "env changed",
    "skipped": "skipped",
    "skipped (resource denied)": "resource denied",
    "run no tests": "no tests",
    "failed again": "failed again",
    "crashed": "crashed",
    "omitted": "omitted",
    "interrupted": "interrupted",
}


@dataclass
class Run:
    mode: str
    command: list[str]
    returncode: int = 0
    seconds: float = 0.0
    #: User + system CPU seconds of the test process: less at the mercy of a
    #: shared machine's load than the wall time.
    cpu_seconds: float = 0.0
    #: test id -> pass, fail, error, skip, xfail, xpass (or "unfinished": the
    #: test started but no outcome was recorded, e.g. a failed subtest).
    outcomes: dict[str, str] = field(default_factory=dict)
    #: test file -> regrtest's verdict other than OK (failed, env changed, ...).
    verdicts: dict[str, str] = field(default_factory=dict)
    result_line: str = ""
    stderr_bytes: int = 0
    spans_received: int | None = None
    log: Path | None = None


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The suite's own configuration must not leak into the runs.
    for name in list(env):
        if name.startswith(("OTEL_", "_OTEL_ASYNCRES")):
            del env[name]
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


def command(python: str, mode: str, regrtest_args: list[str], endpoint: str | None) -> list[str]:
    program = ["-m", "test", *regrtest_args]
    if mode == "plain":
        return [python, *program]
    launcher = [python, "-m", "otel_asyncres", "run"]
    if mode == "none":
        return [*launcher, "--exporter", "none", *program]
    if mode == "console":
        return [*launcher, "--exporter", "console", *program]
    assert mode == "otlp" and endpoint is not None
    otlp = ["--exporter", "otlp", "--protocol", "grpc", "--endpoint", f"http://{endpoint}"]
    return [*launcher, *otlp, *program]


def parse_junit(path: Path) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    if not path.exists():
        return outcomes
    unnamed = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name")
        if name is None:
            unnamed += 1
            outcomes[f"<unnamed testcase {unnamed}>"] = "unfinished"
            continue
        if case.find("error") is not None:
            outcome = "error"
        elif case.find("failure") is not None:
            outcome = "fail"
        elif case.find("skipped") is not None:
            outcome = "skip"
        elif case.find("output") is not None:
            outcome = "xfail"
        elif case.get("outcome") == "UNEXPECTED_SUCCESS":
            outcome = "xpass"
        else:
            outcome = "pass"
        outcomes[name] = outcome
    return outcomes


def parse_summary(text: str) -> tuple[dict[str, str], str]:
    """regrtest's verdict per test file (only those not OK), and its "Result:" line."""
    verdicts: dict[str, str] = {}
    result = ""
    heading: str | None = None
    for line in text.splitlines():
        if line.startswith("Result: "):
            result = line[len("Result: ") :].strip()
        match = _SUMMARY_HEADING.match(line)
        if match:
            heading = _VERDICTS.get(match.group(2))
            continue
        if heading is not None and line.startswith("    "):
            for name in line.split():
                verdicts[name] = heading
            continue
        heading = None
    return verdicts, result


def run_mode(
    python: str, mode: str, regrtest_args: list[str], outdir: Path, receiver: Receiver | None
) -> Run:
    xml = outdir / f"{mode}.xml"
    log = outdir / f"{mode}.log"
    err = outdir / f"{mode}.err"
    endpoint = receiver.endpoint if receiver is not None else None
    cmd = command(python, mode, [*regrtest_args, "--junit-xml", str(xml)], endpoint)
    run = Run(mode, cmd, log=log)
    before = receiver.count() if receiver is not None else 0
    started = time.perf_counter()
    with log.open("w") as out, err.open("w") as errors:
        proc = subprocess.Popen(cmd, stdout=out, stderr=errors, env=child_env(), cwd=outdir)
        # wait4: this child's own resource usage, even with modes run in parallel.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    run.seconds = time.perf_counter() - started
    run.cpu_seconds = usage.ru_utime + usage.ru_stime
    run.returncode = proc.returncode
    run.outcomes = parse_junit(xml)
    run.verdicts, run.result_line = parse_summary(log.read_text(errors="replace"))
    run.stderr_bytes = err.stat().st_size
    if receiver is not None:
        run.spans_received = receiver.count() - before
    return run


def differences(reference: Run, other: Run) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for name in sorted(set(reference.outcomes) | set(other.outcomes)):
        a = reference.outcomes.get(name, "absent")
        b = other.outcomes.get(name, "absent")
        if a != b:
            rows.append((name, a, b))
    for name in sorted(set(reference.verdicts) | set(other.verdicts)):
        a = reference.verdicts.get(name, "ok")
        b = other.verdicts.get(name, "ok")
        if a != b:
            rows.append((f"[file] {name}", a, b))
    return rows


def tally(outcomes: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return " ".join(f"{k}={counts[k]}" for k in sorted(counts)) or "nothing"


def interpreter_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cpython_asyncio",
        description="Run CPython's test_asyncio plainly and under otel-asyncres run; compare per test.",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter (default: this one)")
    parser.add_argument(
        "--tests",
        default="test_asyncio",
        help="comma-separated test packages/modules for regrtest (default test_asyncio)",
    )
    parser.add_argument("-k", "--match", action="append", default=[], help="regrtest -m pattern (repeatable)")
    parser.add_argument(
        "--modes",
        default=",".join(DEFAULT_MODES),
        help=f"comma-separated, from {', '.join(MODES)} (default {','.join(DEFAULT_MODES)})",
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="run the modes at the same time (faster, wall times less comparable)",
    )
    parser.add_argument("--outdir", help="keep logs and XML here (default: a temporary directory)")
    parser.add_argument("regrtest_args", nargs="*", help="more arguments for regrtest (after --)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        print(f"unknown modes: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if "plain" not in modes:
        modes.insert(0, "plain")
    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    regrtest_args = [t.strip() for t in args.tests.split(",") if t.strip()]
    for pattern in args.match:
        regrtest_args += ["-m", pattern]
    regrtest_args += args.regrtest_args
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="cpython-asyncio-")).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    version = interpreter_version(python)
    print(f"Python {version} ({python}); {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"regrtest: {shlex.join(regrtest_args)}; logs in {outdir}", flush=True)

    receiver = Receiver(python) if "otlp" in modes else None
    runs: dict[str, Run] = {}
    try:
        if args.parallel:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(modes)) as pool:
                futures = {
                    m: pool.submit(
                        run_mode, python, m, regrtest_args, outdir, receiver if m == "otlp" else None
                    )
                    for m in modes
                }
                runs = {m: f.result() for m, f in futures.items()}
        else:
            for m in modes:
                print(f"running {m} ...", flush=True)
                runs[m] = run_mode(python, m, regrtest_args, outdir, receiver if m == "otlp" else None)
    finally:
        if receiver is not None:
            receiver.close()

    plain = runs["plain"]
    print()
    print(f"{'mode':<8} {'exit':>4} {'wall s':>8} {'ratio':>6} {'cpu s':>8} {'ratio':>6}  result / outcomes")
    for m, run in runs.items():
        ratio = run.seconds / plain.seconds if plain.seconds else float("nan")
        cpu_ratio = run.cpu_seconds / plain.cpu_seconds if plain.cpu_seconds else float("nan")
        extra = f"; stderr {run.stderr_bytes} bytes" if m == "console" else ""
        if run.spans_received is not None:
            extra += f"; {run.spans_received} spans received"
        print(
            f"{m:<8} {run.returncode:>4} {run.seconds:>8.1f} {ratio:>6.2f} "
            f"{run.cpu_seconds:>8.1f} {cpu_ratio:>6.2f}  "
            f"{run.result_line or '?'}: {len(run.outcomes)} tests, {tally(run.outcomes)}{extra}"
        )
    for name, verdict in sorted(plain.verdicts.items()):
        print(f"plain: {name}: {verdict}")

    same = True
    for m, run in runs.items():
        if m == "plain":
            continue
        rows = differences(plain, run)
        print()
        if not rows and run.returncode == plain.returncode:
            print(f"{m}: every outcome as in the plain run")
            continue
        same = False
        print(f"{m}: {len(rows)} differ from the plain run (exit {plain.returncode} -> {run.returncode}):")
        for name, a, b in rows:
            print(f"  {name}: {a} -> {b}")
    if "console" in runs and runs["console"].stderr_bytes <= plain.stderr_bytes:
        print("\nwarning: the console run printed no more on stderr than the plain run: was it instrumented?")
        same = False
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
