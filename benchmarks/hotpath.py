"""The loop-side hot path, measured in one process per variant (issue 11 item 6).

    python -m benchmarks.hotpath [--repeat 7] [--variants tree,tree-sampled-out,lock]

Each variant runs in a child process of its own, which times the plain
workload ``--repeat`` times, then calls ``otel_asyncres.instrument()`` and
times it again as often, and prints the ratio of the medians. A run's time
is ``asyncio.run`` plus ``otel_asyncres.flush()`` (as in benchmarks/child.py);
the ratio of the best runs, the ratio of the process's CPU time (every
thread) and the loop-only ratio (``asyncio.run`` alone) are printed beside it
(on a loaded machine the CPU and best-of ratios are the steadier ones).

Variants:

- ``tree``: pyperformance's async_tree "none" at 5 levels of 6 branches
  (9,331 tasks, leaves ``await asyncio.sleep(0)``), instrumented with a
  TracerProvider whose BatchSpanProcessor feeds an exporter that drops spans;
- ``tree-sampled-out``: the same tree, TracerProvider(sampler=ALWAYS_OFF);
- ``lock``: 10 tasks x 3,000 turns on one asyncio.Lock with
  ``await asyncio.sleep(0)`` held inside, exported as ``tree``;
- not run by default: ``tree-budget-off``, ``tree-budget-1``,
  ``lock-budget-off`` and ``lock-budget-1``, with ``budget`` off (everything shown) or 1 (nearly
  everything folded), which export as much however fast the run is;
  ``lock-sampled-out``; ``queue`` and ``queue-sampled-out`` (benchmarks/workloads.py's
  producer and consumers); ``eager-tree`` and ``eager-tree-sampled-out`` (the tree under
  ``asyncio.eager_task_factory``, 3.12+).

The first line names the mode of otel_asyncres that was loaded (compiled or
pure Python), so that runs of a compiled and a pure build can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

LEVELS = 5
BRANCHES = 6


class _Tree:
    async def leaf(self) -> None:
        await asyncio.sleep(0)

    async def recurse(self, level: int) -> None:
        if level == 0:
            await self.leaf()
            return
        await asyncio.gather(*[self.recurse(level - 1) for _ in range(BRANCHES)])


async def tree() -> None:
    await _Tree().recurse(LEVELS)


async def lock() -> int:
    from .workloads import lock_contention

    return await lock_contention(1.0)


async def queue() -> int:
    from .workloads import queue_producer_consumer

    return await queue_producer_consumer(1.0)


async def eager_tree() -> None:
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    await tree()


#: Variant: the workload, the mode (benchmarks/modes.py) and options of
#: ``instrument()``. With the default budget, how many spans a run exports
#: depends on how long it takes; the budget-off and budget-1 variants export
#: the same spans however fast the hot path is (all, or nearly none).
VARIANTS: dict[str, tuple[Callable[[], Coroutine[Any, Any, Any]], str, dict[str, Any]]] = {
    "tree": (tree, "export-null", {}),
    "tree-sampled-out": (tree, "sampled-out", {}),
    "lock": (lock, "export-null", {}),
    "tree-budget-off": (tree, "export-null", {"budget": "off"}),
    "tree-budget-1": (tree, "export-null", {"budget": 1}),
    "lock-budget-off": (lock, "export-null", {"budget": "off"}),
    "lock-budget-1": (lock, "export-null", {"budget": 1}),
    "lock-sampled-out": (lock, "sampled-out", {}),
    "queue": (queue, "export-null", {}),
    "queue-sampled-out": (queue, "sampled-out", {}),
    "eager-tree": (eager_tree, "export-null", {}),
    "eager-tree-sampled-out": (eager_tree, "sampled-out", {}),
}
DEFAULT_VARIANTS = ("tree", "tree-sampled-out", "lock")


def _time(
    workload: Callable[[], Coroutine[Any, Any, Any]], flush: Callable[[], None]
) -> tuple[float, float, float]:
    """Wall time of run and flush, wall time of the run alone, and the CPU
    time of the process (every thread, the exporting side's included)."""
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    asyncio.run(workload())
    t1 = time.perf_counter()
    flush()
    t2 = time.perf_counter()
    return t2 - t0, t1 - t0, time.process_time() - c0


def _measure(variant: str, repeat: int) -> dict[str, Any]:
    from .modes import MODES, Setup

    workload, mode, options = VARIANTS[variant]
    _time(workload, lambda: None)  # warm-up: imports, caches
    plain = [_time(workload, lambda: None) for _ in range(repeat)]
    setup = Setup(dataclasses.replace(MODES[mode], options={**MODES[mode].options, **options}))
    _time(workload, setup.flush)  # warm-up, instrumented
    inst = [_time(workload, setup.flush) for _ in range(repeat)]
    counts = setup.counts()
    setup.close()
    from otel_asyncres.instrumentation import frames

    p = statistics.median(t[0] for t in plain)
    i = statistics.median(t[0] for t in inst)
    p_loop = statistics.median(t[1] for t in plain)
    i_loop = statistics.median(t[1] for t in inst)
    p_cpu = statistics.median(t[2] for t in plain)
    i_cpu = statistics.median(t[2] for t in inst)
    return {
        "variant": variant,
        "compiled": frames.OWN_FRAME == 0,  # the hot modules push no frames: compiled
        "plain_s": p,
        "instrumented_s": i,
        "ratio": i / p,
        "loop_ratio": i_loop / p_loop,
        "min_ratio": min(t[0] for t in inst) / min(t[0] for t in plain),
        "cpu_ratio": i_cpu / p_cpu,
        "spans_exported": counts["exported"],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="one JSON line per variant")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args.child, args.repeat)))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for variant in args.variants.split(","):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.hotpath", "--child", variant, "--repeat", str(args.repeat)],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        print(
            f"{variant:18} compiled={result['compiled']!s:5} plain {result['plain_s']:.3f} s  "
            f"instrumented {result['instrumented_s']:.3f} s  ratio {result['ratio']:.2f}x  "
            f"(best-of {result['min_ratio']:.2f}x; CPU {result['cpu_ratio']:.2f}x; "
            f"loop only {result['loop_ratio']:.2f}x; "
            f"{result['spans_exported']} spans)",
            flush=True,
        )


if __name__ == "__main__":
    main()
