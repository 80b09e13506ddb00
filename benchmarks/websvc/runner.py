"""The web-service benchmark: ``python -m benchmarks.websvc``.

Starts the service of ``app.py`` in each mode in turn, for several rounds with
the order of the modes rotating from round to round (the machine is shared:
its drift falls on every mode), drives it with wrk over loopback for a fixed
duration at a fixed number of connections, and prints requests/s per mode
and the ratio to plain as a Markdown table.

Modes (``MODES``):

- ``plain``: ``python app.py``
- ``aiohttp``: ``opentelemetry-instrument python app.py`` with the
  aiohttp-server instrumentation only (otel_asyncres and the aiohttp client
  instrumentation disabled), OTLP to the receiver
- ``export``: ``otel-asyncres run app.py``, OTLP to the receiver
- ``sampled-out``: as ``export`` with ``OTEL_TRACES_SAMPLER=always_off``
- ``aiohttp+asyncres``: ``opentelemetry-instrument python app.py`` with both
  the aiohttp-server instrumentation and otel_asyncres (its
  ``opentelemetry_instrumentor`` entry point), OTLP to the receiver: how a
  real service runs

A mode cannot pass as fast while broken: every response wrk gets is checked
by a Lua script (status 200 and the exact body), the service is asked before
and after the load, its count of requests served must cover wrk's, it must
exit with status 0 on SIGINT, and the receiver (``benchmarks/receiver.py``,
in its own process, pinned away from the service) must have received spans
from every exporting mode and none from the others. Any failure is listed
under "Problems" and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..run import Receiver, child_env

ROOT = Path(__file__).resolve().parent.parent.parent
APP = Path(__file__).resolve().with_name("app.py")
N = 7  # the request: GET /square/7
PATH = f"/square/{N}"
BODY = f"{N} squared is {N * N}\n"

#: wrk checks every response: status 200 and the exact body; ``done`` prints
#: the totals over all threads on one line for the runner.
WRK_SCRIPT = """\
local expected = %s
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  good = 0
  bad = 0
  first_bad = ""
end

function response(status, headers, body)
  if status == 200 and body == expected then
    good = good + 1
  else
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.gsub(string.sub(body or "", 1, 60), "[^%%w%%p ]", "?")
    end
  end
end

function done(summary, latency, requests)
  local g, b, f = 0, 0, ""
  for _, thread in ipairs(threads) do
    g = g + thread:get("good")
    b = b + thread:get("bad")
    if f == "" then f = thread:get("first_bad") end
  end
  io.write(string.format("CHECKED %%d %%d %%d %%d %%d %%s\\n", g, b,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.status, summary.errors.timeout, f))
  io.write(string.format("LATENCY %%d %%d\\n", latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    #: "python" (the interpreter alone), "otel-asyncres" (``otel-asyncres run``)
    #: or "opentelemetry-instrument".
    launcher: str
    env: dict[str, str] = field(default_factory=dict)
    #: Whether the receiver must get spans from it.
    exports: bool = False


#: What no mode sends anywhere: the receiver takes traces only.
COMMON_ENV = {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}

MODES: dict[str, Mode] = {
    m.name: m
    for m in [
        Mode("plain", "python app.py", "python"),
        Mode(
            "aiohttp",
            "opentelemetry-instrument, aiohttp-server instrumentation only, OTLP",
            "opentelemetry-instrument",
            {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "otel_asyncres,aiohttp-client"},
            exports=True,
        ),
        Mode("export", "otel-asyncres run, OTLP", "otel-asyncres", exports=True),
        Mode(
            "sampled-out",
            "otel-asyncres run, OTLP, OTEL_TRACES_SAMPLER=always_off",
            "otel-asyncres",
            {"OTEL_TRACES_SAMPLER": "always_off"},
        ),
        Mode(
            "aiohttp+asyncres",
            "opentelemetry-instrument, aiohttp-server instrumentation and otel_asyncres, OTLP",
            "opentelemetry-instrument",
            {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "aiohttp-client"},
            exports=True,
        ),
    ]
}
BASELINE = "plain"


@dataclass
class Sample:
    mode: str
    round: int
    duration: int
    requests_per_s: float = 0.0
    requests: int = 0
    good: int = 0
    bad: int = 0
    socket_errors: int = 0
    non_2xx: int = 0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    served: int = 0
    #: Requests the service served in all, warm-up and checks included.
    served_total: int = 0
    #: CPU seconds of the service process (every thread) during the measured load.
    cpu_seconds: float = 0.0
    spans: int = 0
    exit_status: int | None = None
    problems: list[str] = field(default_factory=list)


# -- processes --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pinned(core: int | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None else []


def service_command(mode: Mode, python: str, port: int, profiler: Sequence[str] = ()) -> list[str]:
    """The command that starts the service in ``mode``; ``profiler`` (e.g.
    ``-m cProfile -o FILE``) runs the app under a profiler module."""
    app = [*profiler, str(APP), "--port", str(port)]
    if mode.launcher == "python":
        return [python, *app]
    if mode.launcher == "otel-asyncres":
        return [python, "-m", "otel_asyncres", "run", *app]
    if mode.launcher == "opentelemetry-instrument":
        return [str(Path(python).with_name("opentelemetry-instrument")), python, *app]
    raise ValueError(mode.launcher)


def service_env(mode: Mode, endpoint: str | None) -> dict[str, str]:
    env = child_env()
    env.update(COMMON_ENV)
    env["OTEL_SERVICE_NAME"] = "websvc"
    if endpoint is not None and mode.launcher != "python":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{endpoint}"
        env["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
    env.update(mode.env)
    return env


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return response.status, response.read().decode()


def wait_ready(proc: subprocess.Popen[str], port: int, timeout: float) -> str | None:
    """None when the service answers, else what went wrong."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before answering"
        try:
            get(port, "/stats", timeout=1.0)
            return None
        except OSError:
            time.sleep(0.05)
    return f"did not answer within {timeout:.0f} s"


def check_request(port: int) -> str | None:
    try:
        status, text = get(port, PATH)
    except OSError as exc:
        return f"GET {PATH} failed: {exc}"
    if status != 200 or text != BODY:
        return f"GET {PATH} answered {status} {text!r}, expected 200 {BODY!r}"
    return None


def served(port: int) -> int:
    _, text = get(port, "/stats")
    count: int = json.loads(text)["served"]
    return count


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads (0 where /proc is not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    port: int, seconds: int, connections: int, threads: int, core: int | None, script: Path
) -> dict[str, Any]:
    cmd = [
        *pinned(core),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{PATH}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    out = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with status {proc.returncode}: {(proc.stderr or out).strip()[:300]}")
    result: dict[str, Any] = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["requests_per_s"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        result["requests"] = int(m.group(1))
    if m := re.search(r"^CHECKED (\d+) (\d+) (\d+) (\d+) (\d+) ?(.*)$", out, re.MULTILINE):
        good, bad, socket_errors, non_2xx, timeouts, first_bad = m.groups()
        result.update(
            good=int(good),
            bad=int(bad),
            socket_errors=int(socket_errors) + int(timeouts),
            non_2xx=int(non_2xx),
            first_bad=first_bad,
        )
    if m := re.search(r"^LATENCY (\d+) (\d+)$", out, re.MULTILINE):
        result["latency_p50_ms"] = int(m.group(1)) / 1000
        result["latency_p99_ms"] = int(m.group(2)) / 1000
    missing = {"requests_per_s", "requests", "good"} - set(result)
    if missing:
        raise RuntimeError(f"could not read {sorted(missing)} from wrk's output:\n{out}")
    return result


def profiler_args(args: argparse.Namespace, mode: Mode, round_: int) -> list[str]:
    if args.profile is None:
        return []
    out = args.profile / f"{mode.name}-{round_ + 1}.{args.profiler}"
    if args.profiler == "sampler":  # every thread's CPU time, sampled: see sampler.py
        return ["-m", "benchmarks.websvc.sampler", "-o", str(out)]
    if args.profiler == "pyinstrument":  # the loop's thread, sampled, wall time
        return ["-m", "pyinstrument", "-r", "pstats", "-o", str(out)]
    if args.profiler == "yappi":  # every thread, CPU time, deterministic: slows the service 100x
        return ["-m", "yappi", "-c", "cpu", "-f", "pstat", "-o", str(out)]
    return ["-m", "cProfile", "-o", str(out)]


def stop(proc: subprocess.Popen[str], timeout: float, stderr: IO[bytes] | None = None) -> tuple[int, str]:
    """SIGINT, as Ctrl-C: the service shuts down and its exporters flush.
    Its exit status, and what it wrote on ``stderr`` (a file, or its pipe)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        _, text = proc.communicate(timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        _, text = proc.communicate()
        status = -9
    if stderr is not None:
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
    if status == -9:
        text = f"did not stop within {timeout:.0f} s of SIGINT\n{text}"
    return status, text or ""


def measure(
    mode: Mode,
    round_: int,
    args: argparse.Namespace,
    receiver: Receiver | None,
    script: Path,
) -> Sample:
    # The service's stderr goes to a file, not a pipe: a service that writes
    # much there must not block on it.
    with tempfile.TemporaryFile() as errors:
        return _measure(mode, round_, args, receiver, script, errors)


def _measure(
    mode: Mode,
    round_: int,
    args: argparse.Namespace,
    receiver: Receiver | None,
    script: Path,
    errors: IO[bytes],
) -> Sample:
    sample = Sample(mode.name, round_, args.duration)
    port = free_port()
    endpoint = receiver.endpoint if receiver is not None else None
    spans_before = receiver.count() if receiver is not None else 0
    proc = subprocess.Popen(
        [
            *pinned(args.server_core),
            *service_command(mode, args.python, port, profiler_args(args, mode, round_)),
        ],
        cwd=ROOT,
        env=service_env(mode, endpoint),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errors,
        text=True,
    )
    try:
        problem = wait_ready(proc, port, args.startup_timeout) or check_request(port)
        if problem is None:
            if args.warmup > 0:
                run_wrk(port, args.warmup, args.connections, args.threads, args.wrk_core, script)
            served_before, cpu_before = served(port), cpu_seconds(proc.pid)
            result = run_wrk(port, args.duration, args.connections, args.threads, args.wrk_core, script)
            sample.cpu_seconds = cpu_seconds(proc.pid) - cpu_before
            sample.served_total = served(port)
            sample.served = sample.served_total - served_before
            first_bad = result.pop("first_bad", "")
            for key, value in result.items():
                setattr(sample, key, value)
            problem = check_request(port)
            if sample.bad or sample.non_2xx:
                sample.problems.append(
                    f"{sample.bad} wrong responses ({sample.non_2xx} not 2xx), the first: {first_bad!r}"
                )
            if sample.socket_errors:
                sample.problems.append(f"{sample.socket_errors} socket errors or timeouts")
            if sample.good == 0:
                sample.problems.append("no correct response")
            if sample.served < sample.good:
                sample.problems.append(f"the service served {sample.served}, wrk got {sample.good} right")
        if problem:
            sample.problems.append(problem)
    except Exception as exc:
        sample.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        status, stderr = stop(proc, args.stop_timeout, errors)
    sample.exit_status = status
    if status != 0:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        sample.problems.append(f"the service exited with status {status}: {tail}")
    elif "Traceback" in stderr:
        sample.problems.append("the service printed a traceback: " + stderr.strip()[-400:])
    if receiver is not None:
        sample.spans = receiver.count() - spans_before
        if mode.exports and sample.spans == 0:
            sample.problems.append("the receiver got no span")
        if not mode.exports and sample.spans:
            sample.problems.append(f"the receiver got {sample.spans} spans from a mode that exports none")
    return sample


# -- the report -------------------------------------------------------------------------------------


def summarize(samples: Sequence[Sample], modes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per mode: median and range of requests/s; the ratio of medians to
    plain and the range of ratios paired by round."""
    ok = [s for s in samples if not s.problems]
    base = {s.round: s.requests_per_s for s in ok if s.mode == BASELINE}
    summary: dict[str, dict[str, Any]] = {}
    for mode in modes:
        mine = [s for s in ok if s.mode == mode]
        if not mine:
            summary[mode] = {"samples": 0}
            continue
        rates = [s.requests_per_s for s in mine]
        entry: dict[str, Any] = {
            "samples": len(mine),
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
            "p50_ms": statistics.median(s.latency_p50_ms for s in mine),
            "p99_ms": statistics.median(s.latency_p99_ms for s in mine),
            "spans_per_request": statistics.median(s.spans / max(s.served_total, 1) for s in mine),
            "cpu_us_per_request": statistics.median(1e6 * s.cpu_seconds / max(s.good, 1) for s in mine),
            "cpu_share": statistics.median(s.cpu_seconds / s.duration for s in mine),
        }
        if base:
            entry["ratio"] = entry["median"] / statistics.median(base.values())
            base_cpu = statistics.median(
                1e6 * s.cpu_seconds / max(s.good, 1) for s in ok if s.mode == BASELINE
            )
            entry["cpu_ratio"] = entry["cpu_us_per_request"] / base_cpu if base_cpu else 0.0
            paired = [s.requests_per_s / base[s.round] for s in mine if s.round in base]
            if paired:
                entry["ratio_min"], entry["ratio_max"] = min(paired), max(paired)
        summary[mode] = entry
    return summary


def table(summary: dict[str, dict[str, Any]], modes: Sequence[str]) -> str:
    lines = [
        "| mode | req/s median | range | ratio to plain | paired range "
        "| service CPU | CPU µs/req | x plain | p50 ms | p99 ms | spans/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in modes:
        e = summary[mode]
        if not e["samples"]:
            lines.append(f"| {mode} | (no good sample) |" + " |" * 9)
            continue
        ratio = f"{e['ratio']:.0%}" if "ratio" in e else "-"
        paired = f"{e['ratio_min']:.0%}-{e['ratio_max']:.0%}" if "ratio_min" in e else "-"
        cpu_ratio = f"{e['cpu_ratio']:.2f}x" if e.get("cpu_ratio") else "-"
        lines.append(
            f"| {mode} | {e['median']:,.0f} | {e['min']:,.0f}-{e['max']:,.0f} | {ratio} | {paired} "
            f"| {e['cpu_share']:.0%} | {e['cpu_us_per_request']:.0f} | {cpu_ratio} "
            f"| {e['p50_ms']:.1f} | {e['p99_ms']:.1f} | {e['spans_per_request']:.2f} |"
        )
    return "\n".join(lines)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return out + (" (src modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.websvc",
        description="An aiohttp service under wrk: requests/s plain and instrumented (issue 11).",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per sample (10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each sample (2)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs every mode once (5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections (32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads (1)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs the service")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the service to core 0 and wrk and the receiver to core 1 (taskset)",
    )
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    parser.add_argument("--json", type=Path, help="write every sample and the summary here")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the service under a profiler, writing DIR/MODE-ROUND.PROFILER; the rates measured "
        "so are not the service's",
    )
    parser.add_argument(
        "--profiler",
        choices=("sampler", "pyinstrument", "cprofile", "yappi"),
        default="sampler",
        help="sampler (default): every thread's CPU time, sampled (sampler.py: collapsed stacks, "
        "'python -m benchmarks.websvc.sampler --report FILE' summarizes); pyinstrument: pstats, the "
        "event loop's thread, sampled wall time (pip install pyinstrument); cprofile: pstats, every "
        "thread on 3.12 but their stacks mixed; yappi: pstats, every thread's CPU (pip install yappi)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES)}")
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1 or args.threads < 1:
        parser.error("--rounds, --duration, --connections and --threads must be positive")
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    args.server_core, args.wrk_core = (0, 1) if pin else (None, None)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    modes: list[str] = args.modes
    instrument = Path(args.python).with_name("opentelemetry-instrument")
    if any(MODES[m].launcher == "opentelemetry-instrument" for m in modes) and not instrument.exists():
        print(f"{instrument} is missing: pip install -e '.[test]'", file=sys.stderr)
        return 2
    receiver = None
    if any(MODES[m].launcher != "python" for m in modes):
        receiver = Receiver(args.python)
        if args.wrk_core is not None:  # every thread of it, away from the service
            subprocess.run(
                ["taskset", "-a", "-p", "-c", str(args.wrk_core), str(receiver.proc.pid)],
                capture_output=True,
                check=False,
            )
    samples: list[Sample] = []
    started, load_before = time.time(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "check.lua"
        script.write_text(WRK_SCRIPT % json.dumps(BODY))
        try:
            for round_ in range(args.rounds):
                shift = round_ % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    sample = measure(MODES[mode], round_, args, receiver, script)
                    samples.append(sample)
                    if not args.quiet:
                        print(
                            f"round {round_ + 1}/{args.rounds} {mode:>16}: "
                            f"{sample.requests_per_s:9,.0f} req/s, {sample.good} good, {sample.bad} bad, "
                            f"CPU {sample.cpu_seconds:.1f} s, {sample.spans} spans"
                            + (f"  PROBLEM: {'; '.join(sample.problems)}" if sample.problems else ""),
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            if receiver is not None:
                receiver.close()
    summary = summarize(samples, modes)
    problems = [f"round {s.round + 1}, {s.mode}: {p}" for s in samples for p in s.problems]
    print(
        f"Web service (benchmarks/websvc), commit {git_commit()}, Python {platform.python_version()}, "
        f"{args.rounds} rounds x {args.duration:g} s per mode (after {args.warmup:g} s of warm-up), "
        f"wrk -t{args.threads} -c{args.connections}, "
        + ("service on core 0, wrk and receiver on core 1" if args.server_core is not None else "not pinned")
        + f"; {time.time() - started:.0f} s in all; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after.\n"
    )
    print(table(summary, modes))
    print()
    for mode in modes:
        print(f"- `{mode}`: {MODES[mode].description}")
    if problems:
        print("\nProblems:\n" + "\n".join(f"- {p}" for p in problems))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "commit": git_commit(),
                    "python": platform.python_version(),
                    "args": {k: v for k, v in vars(args).items() if k not in ("json",)},
                    "modes": modes,
                    "samples": [vars(s) for s in samples],
                    "summary": summary,
                    "problems": problems,
                },
                indent=2,
                default=str,
            )
        )
    return 1 if problems else 0
