"""What ``otel-asyncres run`` adds to a program's start-up (issue 11): ``python -m benchmarks.startup``.

Times an empty asyncio program (``asyncio.run`` of a coroutine that returns),
run by plain ``python`` and by ``otel-asyncres run`` with the console default
(no OTLP endpoint), N times each, interleaved in the same run so that a shared
machine's drift falls on both. Prints the medians and their difference for
three states of the bytecode caches:

- cached: as installed, the caches of every module there and up to date;
- fresh: ``PYTHONDONTWRITEBYTECODE=1`` and otel_asyncres compiled from source
  on every run (a copy of the package without ``__pycache__``, first on
  PYTHONPATH), the standard library and the dependencies from their caches:
  the first run of a checkout, or every run where caches cannot be written;
- none: ``PYTHONDONTWRITEBYTECODE=1`` and an empty ``PYTHONPYCACHEPREFIX``, so
  every module, the standard library's included, is compiled on every run, by
  plain ``python`` too (an upper bound, rare in practice).

The OTEL_* variables of
the calling environment are removed, so the console default is measured,
and its PYTHON* variables, so both commands start alike.

``--python``: the interpreter to time (default: this one); ``otel-asyncres``
is the console script next to it, else ``python -m otel_asyncres``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

EMPTY_PROGRAM = "import asyncio\n\n\nasync def main():\n    pass\n\n\nasyncio.run(main())\n"


def launcher(python: str) -> list[str]:
    """How to run ``otel-asyncres``: its console script, as a user would."""
    script = Path(python).parent / "otel-asyncres"
    return [str(script)] if script.exists() else [python, "-m", "otel_asyncres"]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock seconds of one run, and its CPU seconds (user + system, of
    the process and its children: what a busy machine inflates least)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


Samples = tuple[list[float], list[float]]  # wall, CPU


def measure(python: str, program: str, runs: int, env: dict[str, str]) -> tuple[Samples, Samples]:
    """Plain and instrumented runs, alternating (after one warm-up each)."""
    plain_command = [python, program]
    instrumented_command = [*launcher(python), "run", program]
    timed(plain_command, env)
    timed(instrumented_command, env)
    plain: Samples = ([], [])
    instrumented: Samples = ([], [])
    for i in range(runs):
        pair = ((plain, plain_command), (instrumented, instrumented_command))
        for samples, command in pair if i % 2 == 0 else reversed(pair):
            wall, cpu = timed(command, env)
            samples[0].append(wall)
            samples[1].append(cpu)
    return plain, instrumented


def clean_environment(src: str | None) -> dict[str, str]:
    """This environment without OTEL_* and PYTHON* variables; ``src``: where
    otel_asyncres is imported from, when not the installed one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHON"))}
    if src is not None:
        env["PYTHONPATH"] = os.path.abspath(src)
    return env


def cached(python: str, tmp: str, src: str | None) -> dict[str, str]:
    return clean_environment(src)


def fresh(python: str, tmp: str, src: str | None) -> dict[str, str]:
    """otel_asyncres from a copy without caches, none written."""
    where = subprocess.run(
        [python, "-c", "import os, otel_asyncres; print(os.path.dirname(otel_asyncres.__file__))"],
        env=clean_environment(src),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = os.path.join(tmp, "fresh")
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(where, os.path.join(path, "otel_asyncres"), ignore=shutil.ignore_patterns("__pycache__"))
    return {**clean_environment(src), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": path}


def none(python: str, tmp: str, src: str | None) -> dict[str, str]:
    """Every module compiled from source, none written."""
    prefix = os.path.join(tmp, "no-pycache")
    os.makedirs(prefix, exist_ok=True)
    return {**clean_environment(src), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": prefix}


MODES: dict[str, Callable[[str, str, str | None], dict[str, str]]] = {
    "cached": cached,
    "fresh": fresh,
    "none": none,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="runs of each command per mode (default 30)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter (default: this one)")
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"bytecode caches, comma-separated (default {','.join(MODES)})",
    )
    parser.add_argument(
        "--src",
        help="import otel_asyncres from this directory (first on PYTHONPATH) instead of the installed "
        "one: e.g. another commit's src/, from 'git archive COMMIT src | tar -x -C DIR'",
    )
    args = parser.parse_args(argv)
    print(f"python: {args.python}; otel-asyncres: {' '.join(launcher(args.python))}; runs: {args.runs}")
    if args.src:
        print(f"otel_asyncres from {args.src}")
    print(f"machine: {os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        program = os.path.join(tmp, "empty.py")
        Path(program).write_text(EMPTY_PROGRAM)
        print("ms: median [quartiles] minimum; the difference is of the medians (minimums)")
        print(f"{'bytecode':9} {'':5} {'plain':>22} {'run':>22} {'difference':>16}")
        for name in args.modes.split(","):
            env = MODES[name](args.python, tmp, args.src)
            plain, instrumented = measure(args.python, program, args.runs, env)
            for label, p, r in (("wall", plain[0], instrumented[0]), ("CPU", plain[1], instrumented[1])):
                difference = statistics.median(r) - statistics.median(p)
                least = min(r) - min(p)
                tag = name if label == "wall" else ""
                print(f"{tag:9} {label:5} {_ms(p)} {_ms(r)} {difference * 1e3:+10.0f} ({least * 1e3:+4.0f})")
    return 0


def _ms(times: list[float]) -> str:
    q1, median, q3 = statistics.quantiles(times, n=4)
    return f"{median * 1e3:5.0f} [{q1 * 1e3:3.0f}-{q3 * 1e3:3.0f}] {min(times) * 1e3:4.0f}"


if __name__ == "__main__":
    sys.exit(main())
