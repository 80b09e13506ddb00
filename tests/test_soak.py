"""Soak: a server-like workload over loopback, instrumented, with flat memory.

Round after round, clients connect to an asyncio TCP echo server and talk to
it; every connection is a task on each side, with a lock, a queue and an event
of its own, and one long-lived semaphore limits them all. After the warm-up,
the instrumentation's live tasks, resources, ops and open spans must come
back to the same level after every round, and the process's traced memory must
not grow beyond noise. Finished tasks and resources must hold nothing.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc

import pytest

import otel_asyncres
from conftest import make_traced

ROUNDS = int(os.environ.get("OTEL_ASYNCRES_SOAK_ROUNDS", "40"))
CONNECTIONS = 30
MESSAGES = 10


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: asyncio.Semaphore
) -> None:
    async with limit:
        inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2)
        lock = asyncio.Lock()
        done = asyncio.Event()

        async def reply() -> None:
            while (line := await inbox.get()) != b"":
                async with lock:
                    writer.write(line)
                    await writer.drain()
            done.set()

        replier = asyncio.create_task(reply())
        while line := await reader.readline():
            await inbox.put(line)
        await inbox.put(b"")
        await done.wait()
        await replier
    writer.close()
    await writer.wait_closed()


async def _client(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    echoed = 0
    for n in range(MESSAGES):
        writer.write(f"message {n}\n".encode())
        await writer.drain()
        echoed += len(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return echoed


async def _soak(measure) -> list[int]:  # type: ignore[no-untyped-def]
    limit = asyncio.Semaphore(10)  # long-lived: it lives through every round
    server = await asyncio.start_server(lambda r, w: _handle(r, w, limit), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    totals = []
    async with server:
        for round_ in range(ROUNDS):
            results = await asyncio.gather(*(_client(port) for _ in range(CONNECTIONS)))
            totals.append(sum(results))
            await asyncio.sleep(0)
            measure(round_)
    return totals


@pytest.mark.slow
@pytest.mark.soak
def test_memory_is_flat_under_a_server_workload():
    handle = make_traced(budget=None, window_duration="1s")  # the default budget
    session = handle.session
    instrumentation = session.instrumentation
    levels = []
    tracemalloc.start()

    def measure(round_: int) -> None:
        session.handoff.flush()
        handle.exporter.clear()  # what a real exporter does: exported spans are gone
        gc.collect()
        levels.append(
            (
                instrumentation.tasks.live_tasks(),
                instrumentation.resources.live_count(),
                session.bridge.open_spans(),
                tracemalloc.get_traced_memory()[0],
            )
        )

    try:
        totals = asyncio.run(_soak(measure))
    finally:
        tracemalloc.stop()
        otel_asyncres.uninstrument()
    expected = CONNECTIONS * sum(len(f"message {n}\n") for n in range(MESSAGES))
    assert totals == [expected] * ROUNDS  # the program did its work, every round
    # Warm-up: the interpreter's and the SDK's caches fill in the first rounds.
    warm = ROUNDS // 4
    assert warm + 10 <= ROUNDS, "too few rounds to tell flat from growing"
    steady = levels[warm:]
    # What is alive between rounds (the server, its semaphore, connections
    # still closing) is the same every round: finished ones leave nothing.
    # A round can catch more alive than another (a sweep showing what has
    # lived a second, connections a collection away from closing): what must
    # not happen is a level that rises, so the floor and the median of the
    # last third are compared with those of the first.
    for i, what in enumerate(("live tasks", "live resources", "open spans")):
        counts = [level[i] for level in steady]
        third = len(counts) // 3
        first, last = sorted(counts[:third]), sorted(counts[-third:])
        assert last[0] <= first[0] + CONNECTIONS // 10, (what, counts)
        assert last[third // 2] <= first[third // 2] + CONNECTIONS // 10, (what, counts)
    memory = [level[3] for level in steady]
    growth = memory[-1] - memory[0]
    # Flat: what the instrumentation keeps does not grow with the rounds run.
    # (Allowance for the interpreter's own caches: well below one round's worth
    # of connections' state, which would be hundreds of kilobytes.)
    assert growth < 256 * 1024, [m // 1024 for m in memory]  # KiB, for the record
