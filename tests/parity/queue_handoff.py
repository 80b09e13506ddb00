"""Queue(maxsize=1) producers and consumers; join/task_done; Priority and Lifo queues."""

import asyncio

import _parity  # noqa: F401


async def producer(name: str, q: asyncio.Queue[str], n: int) -> None:
    for i in range(n):
        item = f"{name}-{i}"
        print(f"{name}: putting {item} (qsize {q.qsize()})")
        await q.put(item)
        print(f"{name}: put {item}")


async def consumer(name: str, q: asyncio.Queue[str]) -> None:
    while True:
        item = await q.get()
        print(f"{name}: got {item}")
        await asyncio.sleep(0)
        q.task_done()
        print(f"{name}: task_done {item}")


async def main() -> None:
    q: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
    consumers = [asyncio.create_task(consumer(f"c{i}", q), name=f"c{i}") for i in range(2)]
    producers = [asyncio.create_task(producer(f"p{i}", q, 3), name=f"p{i}") for i in range(2)]
    await asyncio.gather(*producers)
    print("main: producers done; joining")
    await q.join()
    print("main: joined; qsize", q.qsize())
    for c in consumers:
        c.cancel()
    res = await asyncio.gather(*consumers, return_exceptions=True)
    print("main: consumers ->", [type(r).__name__ for r in res])

    try:
        q.get_nowait()
    except asyncio.QueueEmpty:
        print("main: get_nowait on empty -> QueueEmpty")
    q.put_nowait("x")
    try:
        q.put_nowait("y")
    except asyncio.QueueFull:
        print("main: put_nowait on full -> QueueFull")
    print("main: get_nowait ->", q.get_nowait())

    pq: asyncio.PriorityQueue[tuple[int, str]] = asyncio.PriorityQueue()
    for item in [(3, "c"), (1, "a"), (2, "b")]:
        await pq.put(item)
    print("main: priority order", [pq.get_nowait() for _ in range(3)])
    lq: asyncio.LifoQueue[int] = asyncio.LifoQueue()
    for i in range(3):
        lq.put_nowait(i)
    print("main: lifo order", [await lq.get() for _ in range(3)])

    q2: asyncio.Queue[int] = asyncio.Queue()
    getter = asyncio.create_task(q2.get(), name="getter")
    await asyncio.sleep(0)
    getter.cancel()
    await asyncio.sleep(0)
    q2.put_nowait(42)
    print("main: after a cancelled getter, get ->", await q2.get(), "getter cancelled", getter.cancelled())


asyncio.run(main())
