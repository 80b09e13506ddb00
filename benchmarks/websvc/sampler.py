"""A sampling profiler of every thread's CPU time, for the service under load.

cProfile on 3.12 sees every thread but mixes their stacks (it is built on
sys.monitoring, process-wide), and yappi slows the service a hundredfold, so
the export it profiles is no longer the one measured. This samples instead:
a thread wakes every ``--interval`` seconds, reads every other thread's
CPU clock and, for each thread whose CPU time advanced, charges the advance
to the stack it is in now. That thread needs the GIL, so it samples where
threads give it up: at every blocking call, and at least every switch
interval (5 ms by default) in pure-Python code. That is fair to the
exporting threads, which run Python code between rare blocking calls, but
not to the event loop's thread, which gives the GIL up at every socket call
and would seem to spend its time there. The main thread is sampled from a
SIGPROF timer instead (``setitimer(ITIMER_PROF)``, every ``--interval`` of
the process's CPU time): the handler runs in it at the next bytecode
boundary and charges its CPU clock's advance to the stack it interrupted.
(asyncio's wakeup fd makes each SIGPROF wake the loop once; it ignores it.)

Run a script under it (``otel-asyncres run -m benchmarks.websvc.sampler -o
OUT app.py ...``): at exit it writes OUT in the collapsed-stack format
(``thread;frame;...;frame microseconds``, what flamegraph.pl reads).
``--report OUT`` prints the per-thread CPU, the functions with the most CPU
time of their own, and the functions of otel_asyncres (and of
OpenTelemetry) with the most CPU time including what they call.
"""

from __future__ import annotations

import argparse
import atexit
import os
import runpy
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

Stacks = defaultdict[tuple[str, ...], float]


def frame_name(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{code.co_name}"


def stack_of(frame: FrameType | None) -> list[str]:
    names: list[str] = []
    while frame is not None:
        names.append(frame_name(frame))
        frame = frame.f_back
    names.reverse()
    return names


class Sampler:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.stacks: Stacks = defaultdict(float)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._main_cpu = time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)
        signal.signal(signal.SIGPROF, self._on_prof)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        self._thread.start()

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        self._stop.set()
        self._thread.join(1.0)

    def _on_prof(self, signum: int, frame: FrameType | None) -> None:
        cpu = time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)
        advance, self._main_cpu = cpu - self._main_cpu, cpu
        if advance > 0:
            key = ("MainThread", *stack_of(frame))
            self.stacks[key] += advance

    def _run(self) -> None:
        me, main = threading.get_ident(), threading.main_thread().ident
        last: dict[int, float] = {}
        while not self._stop.wait(self.interval):
            frames = sys._current_frames()
            names = {t.ident: t.name for t in threading.enumerate()}
            self.samples += 1
            for ident, frame in frames.items():
                if ident in (me, main):
                    continue
                try:
                    cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
                except OSError:
                    continue
                advance = cpu - last.get(ident, cpu)
                last[ident] = cpu
                if advance > 0:
                    key = (names.get(ident, f"thread-{ident}"), *stack_of(frame))
                    self.stacks[key] += advance
        self.stacks[("sampler",)] += time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)

    def write(self, out: Path) -> None:
        with out.open("w") as f:
            for stack, seconds in sorted(self.stacks.items(), key=lambda item: -item[1]):
                f.write(f"{';'.join(stack)} {round(seconds * 1e6)}\n")


def run(out: Path, interval: float, script: str, args: Sequence[str]) -> None:
    sampler = Sampler(interval)

    def finish() -> None:
        sampler.stop()
        sampler.write(out)

    # Registered first, so it runs last: after the exporters' own exit hooks.
    atexit.register(finish)
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    sampler.start()
    runpy.run_path(script, run_name="__main__")


def read(path: Path) -> Stacks:
    stacks: Stacks = defaultdict(float)
    for line in path.read_text().splitlines():
        stack, _, micros = line.rpartition(" ")
        stacks[tuple(stack.split(";"))] += int(micros) / 1e6
    return stacks


INSTRUMENTATION = ("otel_asyncres/", "opentelemetry/", "grpc/", "google/protobuf/")


def _stdlib(name: str) -> bool:
    return name.startswith((".", "<"))


def instrumentation_entry(stack: tuple[str, ...]) -> str | None:
    """For a sample of the loop's thread: the outermost otel_asyncres (or
    OpenTelemetry) frame of the instrumentation the sample is in, or None
    when it is in the program (or asyncio, or aiohttp) itself. From the top
    of the stack down, standard-library frames belong to whoever called
    them; the first other frame decides; the entry is the last frame of the
    contiguous run of instrumentation and standard-library frames."""
    entry = None
    for name in reversed(stack[1:]):
        if name.startswith(INSTRUMENTATION):
            entry = name
        elif not _stdlib(name):
            break
    return entry


def report(stacks: Stacks, top: int = 25) -> str:
    total = sum(s for stack, s in stacks.items() if stack[0] != "sampler")
    lines = [f"CPU sampled: {total:.2f} s (the sampler itself: {stacks.get(('sampler',), 0.0):.2f} s)", ""]
    by_thread: defaultdict[str, float] = defaultdict(float)
    own: defaultdict[str, float] = defaultdict(float)
    inclusive: defaultdict[str, float] = defaultdict(float)
    for stack, seconds in stacks.items():
        if stack[0] == "sampler":
            continue
        by_thread[stack[0]] += seconds
        if len(stack) > 1:
            own[stack[-1]] += seconds
        # Inclusive time counts what the instrumentation does, not the
        # program's code that its task-step wrapper runs.
        if stack[0] != "MainThread" or instrumentation_entry(stack) is not None:
            for name in set(stack[1:]):
                inclusive[name] += seconds
    lines += ["| thread | CPU s | share |", "|---|---:|---:|"]
    lines += [
        f"| {t} | {s:.2f} | {s / total:.1%} |" for t, s in sorted(by_thread.items(), key=lambda i: -i[1])
    ]
    entries: defaultdict[str, float] = defaultdict(float)
    instrumented_own: defaultdict[str, float] = defaultdict(float)
    for stack, seconds in stacks.items():
        if stack[0] == "MainThread" and (entry := instrumentation_entry(stack)) is not None:
            entries[entry] += seconds
            instrumented_own[stack[-1]] += seconds
    main = by_thread.get("MainThread", 0.0)
    if main:
        spent = sum(entries.values())
        lines += [
            "",
            f"The loop's thread in instrumentation (otel_asyncres's hooks or OpenTelemetry's, and what "
            f"they call, asyncio's work that they wrap included): "
            f"{spent:.2f} s, {spent / main:.1%} of the thread, {spent / total:.1%} of the process. "
            "By the hook entered:",
            "",
            "| entered at | CPU s | share of the process |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| `{f}` | {s:.2f} | {s / total:.1%} |"
            for f, s in sorted(entries.items(), key=lambda i: -i[1])[:top]
        ]
        lines += ["", "Own time inside those hooks:", "", "| function | CPU s | share |", "|---|---:|---:|"]
        lines += [
            f"| `{f}` | {s:.2f} | {s / total:.1%} |"
            for f, s in sorted(instrumented_own.items(), key=lambda i: -i[1])[:top]
        ]
    lines += [
        "",
        "Own time (the frame on top of the stack):",
        "",
        "| function | CPU s | share |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| `{f}` | {s:.2f} | {s / total:.1%} |" for f, s in sorted(own.items(), key=lambda i: -i[1])[:top]
    ]
    for title, prefix in (("otel_asyncres", "otel_asyncres/"), ("OpenTelemetry", "opentelemetry/")):
        ranked = sorted(((s, f) for f, s in inclusive.items() if f.startswith(prefix)), reverse=True)
        lines += ["", f"{title}, inclusive time (with what they call, the program's own code left out):", ""]
        lines += ["| function | CPU s | share |", "|---|---:|---:|"]
        lines += [f"| `{f}` | {s:.2f} | {s / total:.1%} |" for s, f in ranked[:top]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.websvc.sampler", description=__doc__)
    parser.add_argument("-o", "--output", type=Path, help="where the collapsed stacks go")
    parser.add_argument("-i", "--interval", type=float, default=0.001, help="seconds between samples")
    parser.add_argument("--report", type=Path, metavar="STACKS", help="print the report of a written file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("script", nargs="?")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    if ns.report is not None:
        print(report(read(ns.report), ns.top))
        return 0
    if ns.output is None or ns.script is None:
        parser.error("give -o OUT and a script to run, or --report STACKS")
    run(ns.output, ns.interval, ns.script, ns.args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
