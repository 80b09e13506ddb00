"""What ``otel-asyncres run`` adds to a program's start-up (issue 11): ``python -m benchmarks.startup``.

Times an empty asyncio program (``asyncio.run`` of a coroutine that returns),
run by plain ``python`` and by ``otel-asyncres run`` with the console default
(no OTLP endpoint), N times each, interleaved in the same run so that a shared
machine's drift falls on both. Prints the medians and their difference, twice:
with the bytecode caches as an installed package has them, and with fresh
bytecode (``PYTHONDONTWRITEBYTECODE=1`` and an empty ``PYTHONPYCACHEPREFIX``:
every module, the standard library's included, compiled from source, nothing
written), as on a first run or a read-only install. The OTEL_* variables of
the calling environment are removed, so the console default is measured,
and its PYTHON* variables, so both commands start alike.

``--python``: the interpreter to time (default: this one); ``otel-asyncres``
is the console script next to it, else ``python -m otel_asyncres``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMPTY_PROGRAM = "import asyncio\n\n\nasync def main():\n    pass\n\n\nasyncio.run(main())\n"


def launcher(python: str) -> list[str]:
    """How to run ``otel-asyncres``: its console script, as a user would."""
    script = Path(python).parent / "otel-asyncres"
    return [str(script)] if script.exists() else [python, "-m", "otel_asyncres"]


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure(python: str, program: str, runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Times of plain and instrumented runs, alternating (after one warm-up each)."""
    plain_command = [python, program]
    instrumented_command = [*launcher(python), "run", program]
    timed(plain_command, env)
    timed(instrumented_command, env)
    plain: list[float] = []
    instrumented: list[float] = []
    for i in range(runs):
        pair = ((plain, plain_command), (instrumented, instrumented_command))
        for times, command in pair if i % 2 == 0 else reversed(pair):
            times.append(timed(command, env))
    return plain, instrumented


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHON"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="runs of each command per mode (default 30)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter (default: this one)")
    parser.add_argument(
        "--mode", choices=("cached", "fresh", "both"), default="both", help="bytecode caches (default both)"
    )
    args = parser.parse_args(argv)
    print(f"python: {args.python}; otel-asyncres: {' '.join(launcher(args.python))}; runs: {args.runs}")
    print(f"machine: {os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        program = os.path.join(tmp, "empty.py")
        Path(program).write_text(EMPTY_PROGRAM)
        modes = []
        if args.mode in ("cached", "both"):
            modes.append(("cached bytecode", clean_environment()))
        if args.mode in ("fresh", "both"):
            prefix = os.path.join(tmp, "no-pycache")
            os.mkdir(prefix)
            fresh = {**clean_environment(), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": prefix}
            modes.append(("fresh bytecode", fresh))
        print(f"{'':16} {'plain':>9} {'run':>9} {'difference':>11}   (medians; quartiles in brackets)")
        for name, env in modes:
            plain, instrumented = measure(args.python, program, args.runs, env)
            p, r = statistics.median(plain), statistics.median(instrumented)
            print(
                f"{name:16} {p * 1e3:7.0f}ms {r * 1e3:7.0f}ms {(r - p) * 1e3:+9.0f}ms"
                f"   [{_quartiles(plain)}] [{_quartiles(instrumented)}]"
            )
    return 0


def _quartiles(times: list[float]) -> str:
    q1, _, q3 = statistics.quantiles(times, n=4)
    return f"{q1 * 1e3:.0f}-{q3 * 1e3:.0f}ms"


if __name__ == "__main__":
    sys.exit(main())
