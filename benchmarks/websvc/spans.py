"""What an exporting mode sends while the service is under load: span names,
span events, and span data per second against otel-asyncres's budget.

``python -m benchmarks.websvc.spans [--mode export] [--duration 10]`` starts
the service as the runner does, with an OTLP/gRPC receiver that keeps every
span (tests/otlp_receivers.py, in this process), drives it with wrk, stops
it, and counts what ended during the load: spans and span events per second
(the budget's units: ``OTEL_ASYNCRES_BUDGET``, 2,000 a second by default),
and the most frequent span and event names (digits folded).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .runner import (
    BODY,
    MODES,
    ROOT,
    WRK_SCRIPT,
    free_port,
    run_wrk,
    service_command,
    service_env,
    stop,
    wait_ready,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.websvc.spans", description=__doc__)
    parser.add_argument("--mode", default="export", choices=[m for m in MODES if MODES[m].exports])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="an environment variable of the service",
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from otlp_receivers import GrpcReceiver  # type: ignore[import-not-found]

    mode = MODES[args.mode]
    with GrpcReceiver(metrics=False) as receiver, tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "check.lua"
        script.write_text(WRK_SCRIPT % f'"{BODY.strip()}\\n"')
        port = free_port()
        endpoint = receiver.endpoint.removeprefix("http://")
        proc = subprocess.Popen(
            ["taskset", "-c", "0", *service_command(mode, sys.executable, port)],
            cwd=ROOT,
            env={**service_env(mode, endpoint), **dict(v.split("=", 1) for v in args.set)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        problem = wait_ready(proc, port, 30.0)
        started = time.time_ns()
        result = run_wrk(port, args.duration, args.connections, 1, 1, script) if problem is None else {}
        ended = time.time_ns()
        status, stderr = stop(proc, 30.0)
        if problem or status != 0:
            print(f"the service failed: {problem or status}\n{stderr}", file=sys.stderr)
            return 1
        spans = [s.span for s in receiver.spans()]
    during = [s for s in spans if started <= s.end_time_unix_nano <= ended]
    seconds = (ended - started) / 1e9
    events = sum(len(s.events) for s in during)
    names = Counter(re.sub(r"\d+", "N", s.name) for s in during)
    event_names = Counter(e.name for s in during for e in s.events)
    requests = result["requests"]
    print(
        f"{args.mode} {' '.join(args.set)}: {requests:,} requests in {seconds:.1f} s "
        f"({requests / seconds:,.0f}/s); "
        f"{len(spans):,} spans received in all, {len(during):,} ended during the load\n"
        f"during the load: {len(during) / seconds:,.0f} spans/s + {events / seconds:,.0f} events/s = "
        f"{(len(during) + events) / seconds:,.0f} units/s; {len(during) / requests:.2f} spans "
        f"and {events / requests:.2f} events per request\n"
    )
    print("| span | count | per request |\n|---|---:|---:|")
    for name, n in names.most_common(args.top):
        print(f"| `{name}` | {n:,} | {n / requests:.2f} |")
    print("\n| event | count | per request |\n|---|---:|---:|")
    for name, n in event_names.most_common(args.top):
        print(f"| `{name}` | {n:,} | {n / requests:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
