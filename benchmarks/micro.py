"""Micro-benchmarks run in a child process: the memory held per live task and
per live resource, and per finished one.

``memory_per_entity``: tracemalloc, 10,000 tasks parked on one Event, then
10,000 Locks each held, measured against a snapshot before, grouped by the
package that allocated the memory; and what is left once they are gone.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any


def _group(filename: str) -> str:
    if "/otel_asyncres/" in filename:
        return "otel_asyncres"
    if "/opentelemetry/" in filename:
        return "opentelemetry"
    if "/asyncio/" in filename:
        return "asyncio"
    return "other"


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<unknown>")]
    )


def _diff(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, int]:
    out = {"otel_asyncres": 0, "opentelemetry": 0, "asyncio": 0, "other": 0}
    for stat in after.compare_to(before, "filename"):
        out[_group(stat.traceback[0].filename)] += stat.size_diff
    out["total"] = sum(out.values())
    return out


def memory_per_entity(spec: dict[str, Any]) -> dict[str, Any]:
    from .modes import MODES, Setup

    n = int(spec.get("n", 10000))
    setup = Setup(MODES[spec["mode"]])
    result: dict[str, Any] = {"mode": spec["mode"], "n": n}

    async def settle() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        setup.flush()
        gc.collect()

    async def main() -> None:
        event = asyncio.Event()

        async def parked() -> None:
            await event.wait()

        # Warm up every path once, so lazily built structures are in the baseline.
        warm = [asyncio.create_task(parked()) for _ in range(100)]
        warm_locks = [asyncio.Lock() for _ in range(100)]
        for lock in warm_locks:
            await lock.acquire()
        await settle()
        event.set()
        await asyncio.gather(*warm)
        for lock in warm_locks:
            lock.release()
        del warm, warm_locks, lock
        event = asyncio.Event()
        await settle()

        base = _snapshot()
        tasks = [asyncio.create_task(parked()) for _ in range(n)]
        await settle()
        result["live_tasks"] = _diff(base, _snapshot())
        event.set()
        await asyncio.gather(*tasks)
        del tasks
        await settle()
        result["after_tasks"] = _diff(base, _snapshot())

        base = _snapshot()
        locks = [asyncio.Lock() for _ in range(n)]
        for lock in locks:
            await lock.acquire()
        await settle()
        result["live_locks"] = _diff(base, _snapshot())
        for lock in locks:
            lock.release()
        del locks, lock
        await settle()
        result["after_locks"] = _diff(base, _snapshot())

    tracemalloc.start()
    try:
        asyncio.run(main())
    finally:
        tracemalloc.stop()
        setup.close()
    return result
