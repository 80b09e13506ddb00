"""The workloads: asyncio programs that do a fixed amount of work.

Each workload is deterministic in the work it does (the same tasks, the same
hand-offs, the same bytes), not in the time it takes. ``scale`` multiplies the
amount of work (1.0 is the default size, sized so that one plain run takes
roughly 0.2-1 s on a 2-core machine; ``--quick`` uses a smaller scale).

A workload is an ``async def`` taking the scale; the harness runs it with
``asyncio.run`` (or uvloop's loop), once per measured run.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

HAS_EAGER = sys.version_info >= (3, 12)

# -- async trees, after pyperformance's bm_async_tree ----------------------------------------

NUM_RECURSE_LEVELS = 6
NUM_RECURSE_BRANCHES = 6
RANDOM_SEED = 0
IO_SLEEP_TIME = 0.05
MEMOIZABLE_PERCENTAGE = 90
CPU_PROBABILITY = 0.5
FACTORIAL_N = 500


class AsyncTree:
    """pyperformance's async_tree: ``asyncio.gather`` over LEVELS x BRANCHES.

    6 levels of 6 branches are 46,656 leaves and 55,987 coroutines, each but
    the root wrapped in a task by ``gather``. ``asyncio.gather`` and
    ``asyncio.sleep`` are looked up on the module at call time, as in
    pyperformance, so that opentelemetry-instrumentation-asyncio's wrappers
    apply.
    """

    def __init__(self, levels: int = NUM_RECURSE_LEVELS, eager: bool = False) -> None:
        self.cache: dict[int, bool] = {}
        self.levels = levels
        self.eager = eager
        self.random = random.Random(RANDOM_SEED)

    async def mock_io_call(self) -> None:
        await asyncio.sleep(IO_SLEEP_TIME)

    async def workload_func(self) -> object:
        raise NotImplementedError

    async def recurse_with_gather(self, recurse_level: int) -> None:
        if recurse_level == 0:
            await self.workload_func()
            return
        await asyncio.gather(
            *[self.recurse_with_gather(recurse_level - 1) for _ in range(NUM_RECURSE_BRANCHES)]
        )

    async def run(self) -> None:
        if self.eager:
            asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        await self.recurse_with_gather(self.levels)


class NoneAsyncTree(AsyncTree):
    async def workload_func(self) -> None:
        return


class IOAsyncTree(AsyncTree):
    async def workload_func(self) -> None:
        await self.mock_io_call()


class MemoizationAsyncTree(AsyncTree):
    async def workload_func(self) -> int:
        data = self.random.randint(1, 100)
        if data <= MEMOIZABLE_PERCENTAGE:
            if self.cache.get(data):
                return data
            self.cache[data] = True
        await self.mock_io_call()
        return data


class CpuIoMixedAsyncTree(MemoizationAsyncTree):
    async def workload_func(self) -> int:
        if self.random.random() < CPU_PROBABILITY:
            return math.factorial(FACTORIAL_N) % 7  # mock cpu-bound call
        return await MemoizationAsyncTree.workload_func(self)


TREES: dict[str, type[AsyncTree]] = {
    "none": NoneAsyncTree,
    "io": IOAsyncTree,
    "memoization": MemoizationAsyncTree,
    "cpu_io_mixed": CpuIoMixedAsyncTree,
}

#: The coroutines opentelemetry-instrumentation-asyncio is told to trace for the
#: trees (OTEL_PYTHON_ASYNCIO_COROUTINE_NAMES_TO_TRACE): pyperformance's two
#: recursion coroutines (gather and task-group variants; only the first runs here).
TREE_COROUTINES = ("recurse_with_gather", "recurse_with_task_group")


def _levels(scale: float) -> int:
    """Tree depth for a scale: 6 at 1.0; each level less is 6x less work."""
    if scale >= 1.0:
        return NUM_RECURSE_LEVELS
    return max(2, NUM_RECURSE_LEVELS - round(math.log(1 / scale, NUM_RECURSE_BRANCHES)))


def tree_workload(kind: str, eager: bool) -> Callable[[float], Awaitable[object]]:
    cls = TREES[kind]

    async def run(scale: float) -> object:
        return await cls(_levels(scale), eager=eager).run()

    run.__name__ = f"async_tree_{kind}{'_eager' if eager else ''}"
    return run


# -- contention ----------------------------------------------------------------------------


def _n(base: int, scale: float) -> int:
    return max(1, round(base * scale))


async def lock_contention(scale: float) -> int:
    """10 tasks take turns on one Lock, yielding while holding it, so every
    acquire but the first of a round is a contended hand-off."""
    lock = asyncio.Lock()
    rounds = _n(3000, scale)
    counter = 0

    async def worker() -> None:
        nonlocal counter
        for _ in range(rounds):
            async with lock:
                counter += 1
                await asyncio.sleep(0)

    await asyncio.gather(*[worker() for _ in range(10)])
    return counter


async def semaphore_contention(scale: float) -> int:
    """10 tasks share a Semaphore(3), yielding while holding a permit."""
    sem = asyncio.Semaphore(3)
    rounds = _n(3000, scale)
    counter = 0

    async def worker() -> None:
        nonlocal counter
        for _ in range(rounds):
            async with sem:
                counter += 1
                await asyncio.sleep(0)

    await asyncio.gather(*[worker() for _ in range(10)])
    return counter


async def queue_producer_consumer(scale: float) -> int:
    """2 producers and 2 consumers over a Queue(maxsize=4); ``None`` ends a consumer."""
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=4)
    items = _n(15000, scale)
    total = 0

    async def producer(start: int) -> None:
        for i in range(start, items, 2):
            await queue.put(i)

    async def consumer() -> None:
        nonlocal total
        while (item := await queue.get()) is not None:
            total += item

    consumers = [asyncio.create_task(consumer()) for _ in range(2)]
    await asyncio.gather(producer(0), producer(1))
    for _ in consumers:
        await queue.put(None)
    await asyncio.gather(*consumers)
    return total


async def event_ping_pong(scale: float) -> int:
    """Two tasks bounce between two Events: every wait is woken by the other task."""
    ping, pong = asyncio.Event(), asyncio.Event()
    rounds = _n(15000, scale)

    async def pinger() -> None:
        for _ in range(rounds):
            ping.set()
            await pong.wait()
            pong.clear()

    async def ponger() -> int:
        n = 0
        for _ in range(rounds):
            await ping.wait()
            ping.clear()
            n += 1
            pong.set()
        return n

    _, n = await asyncio.gather(pinger(), ponger())
    return n


# -- many short tasks, echo server -------------------------------------------------------


async def short_tasks(scale: float) -> int:
    """Batches of 1,000 tasks that each yield once and return, awaited with ``wait``."""
    batches = _n(40, scale)
    total = 0

    async def short(i: int) -> int:
        await asyncio.sleep(0)
        return i

    for _ in range(batches):
        tasks = [asyncio.create_task(short(i)) for i in range(1000)]
        await asyncio.wait(tasks)
        total += sum(t.result() for t in tasks)
    return total


async def echo_client(port: int, lines: Sequence[bytes]) -> int:
    """Connect to an echo server on 127.0.0.1, send each line and read it back
    (one round trip each); the bytes echoed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = 0
    for line in lines:
        writer.write(line)
        await writer.drain()
        received += len(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return received


async def echo_server(scale: float) -> int:
    """``asyncio.start_server`` on 127.0.0.1 and 20 clients doing request/response
    round trips of one 64-byte line each (a handler task per connection)."""
    clients = 20
    round_trips = _n(150, scale)
    message = b"x" * 63 + b"\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    lines = [message] * round_trips
    async with server:
        results = await asyncio.gather(*[echo_client(port, lines) for _ in range(clients)])
    return sum(results)


# -- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    group: str
    run: Callable[[float], Awaitable[object]]
    description: str
    #: Coroutine names opentelemetry-instrumentation-asyncio traces for this workload.
    coroutines: tuple[str, ...] = ()
    #: Why it cannot run on this interpreter, if it cannot.
    unavailable: str | None = None
    tags: tuple[str, ...] = field(default=())


def _workloads() -> dict[str, Workload]:
    table: list[Workload] = []
    for kind in TREES:
        table.append(
            Workload(
                f"async_tree_{kind}",
                "async tree",
                tree_workload(kind, eager=False),
                f"pyperformance async_tree '{kind}': gather over 6 levels x 6 branches",
                TREE_COROUTINES,
            )
        )
    for kind in TREES:
        table.append(
            Workload(
                f"async_tree_eager_{kind}",
                "async tree",
                tree_workload(kind, eager=True),
                f"async_tree '{kind}' with asyncio.eager_task_factory",
                TREE_COROUTINES,
                unavailable=None if HAS_EAGER else "eager_task_factory needs Python 3.12+",
            )
        )
    table += [
        Workload(
            "lock",
            "contention",
            lock_contention,
            "10 tasks x 3,000 turns on one asyncio.Lock",
            ("worker",),
        ),
        Workload(
            "semaphore",
            "contention",
            semaphore_contention,
            "10 tasks x 3,000 turns on one asyncio.Semaphore(3)",
            ("worker",),
        ),
        Workload(
            "queue",
            "contention",
            queue_producer_consumer,
            "2 producers, 2 consumers, 15,000 items through asyncio.Queue(maxsize=4)",
            ("producer", "consumer"),
        ),
        Workload(
            "event_ping_pong",
            "contention",
            event_ping_pong,
            "15,000 round trips between two tasks over two asyncio.Events",
            ("pinger", "ponger"),
        ),
        Workload(
            "short_tasks",
            "tasks",
            short_tasks,
            "40 batches of 1,000 tasks that yield once, awaited with asyncio.wait",
            ("short",),
        ),
        Workload(
            "echo_server",
            "server",
            echo_server,
            "asyncio.start_server on 127.0.0.1, 20 clients x 150 line round trips",
            ("client", "handle"),
        ),
    ]
    return {w.name: w for w in table}


WORKLOADS = _workloads()
