"""One measured configuration, in a fresh process: ``python -m benchmarks.child SPEC``.

SPEC is a JSON object from the harness. The child sets the mode up, runs the
workload once at a reduced size to warm up (code paths, allocator arenas, the
exporter's connection), then ``runs`` times at full size, and prints one line
``BENCH-RESULT {json}`` on stdout. A run's time includes the flush that turns
its records into spans and exports them, so work left to background threads is
paid inside the run that caused it; ``loop`` is the time until the workload
returned, before that flush.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS (VmHWM) of this process (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return (kb or 0) / 1024


def _peak_rss_mb(resettable: bool) -> float:
    kb = _status_kb("VmHWM") if resettable else None
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def runner(loop: str) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    if loop == "uvloop":
        import uvloop

        def run(coro: Coroutine[Any, Any, Any]) -> Any:
            return uvloop.run(coro)

        return run
    return asyncio.run


def run_workload(spec: dict[str, Any]) -> dict[str, Any]:
    from .modes import MODES, Setup
    from .workloads import WORKLOADS

    workload = WORKLOADS[spec["workload"]]
    mode = MODES[spec["mode"]]
    run = runner(spec.get("loop", "asyncio"))
    scale = float(spec.get("scale", 1.0))
    setup = Setup(mode, spec.get("endpoint"), workload.coroutines, int(spec.get("bsp_queue", 0)))
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    warmup = float(spec.get("warmup", 0.0))
    if warmup > 0:
        run(workload.run(scale * warmup))
        setup.flush()
    samples = []
    for _ in range(int(spec.get("runs", 1))):
        gc.collect()
        before = setup.counts()
        dropped_before = setup.handoff_dropped()
        resettable = _reset_peak_rss()
        rss_before = _rss_mb()
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        c0 = time.process_time()
        run(workload.run(scale))
        t1 = time.perf_counter()
        setup.flush()
        t2 = time.perf_counter()
        c2 = time.process_time()
        if profiler is not None:
            profiler.disable()
        after = setup.counts()
        samples.append(
            {
                "loop": t1 - t0,
                "wall": t2 - t0,
                "cpu": c2 - c0,
                "spans": after["ended"] - before["ended"],
                "exported": after["exported"] - before["exported"],
                "failed": after["failed"] - before["failed"],
                "export_seconds": after["export_seconds"] - before["export_seconds"],
                "rss_before_mb": rss_before,
                "rss_peak_mb": _peak_rss_mb(resettable),
                "handoff_dropped": setup.handoff_dropped() - dropped_before,
            }
        )
    errors = setup.internal_errors()
    exported_total = setup.counts()["exported"]
    setup.close()
    if profiler is not None:
        profiler.dump_stats(spec["profile"])
    return {
        "samples": samples,
        "internal_errors": errors,
        "exported_total": exported_total,
        "python": sys.version.split()[0],
    }


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    kind = spec.get("kind", "workload")
    if kind == "workload":
        result = run_workload(spec)
    elif kind == "memory":
        from .micro import memory_per_entity

        result = memory_per_entity(spec)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
