"""A connection pool instrumented as a resource of its own.

``otel_asyncres.Resource`` is the public API for library authors: the pool
declares itself (type, kind, initial state), performs its ``acquire`` as an
async op, and keeps its state up to date. Under ``otel-asyncres run`` it shows
up like asyncio's primitives: ``resource mylib.ConnectionPool`` with
``state_update`` events (idle, in_use), and an ``async_op
ConnectionPool.acquire`` under every task that took a connection: a few
microseconds for those that found one idle, the wait for a release (and the
pool's ``Queue.get`` inside it) for the others.
Without instrumentation the same calls cost next to nothing.

Run it:  otel-asyncres run examples/custom_pool.py
"""

import asyncio

import otel_asyncres


class ConnectionPool:
    def __init__(self, size: int) -> None:
        self._idle: asyncio.Queue[str] = asyncio.Queue()
        for n in range(size):
            self._idle.put_nowait(f"conn-{n}")
        self.resource = otel_asyncres.Resource(
            "mylib.ConnectionPool", kind="Sync", state={"size": size, "idle": size, "in_use": 0}
        )

    async def acquire(self) -> str:
        async with self.resource.operation("ConnectionPool.acquire"):
            conn = await self._idle.get()
        self.resource.sub(idle=1)
        self.resource.add(in_use=1)
        return conn

    def release(self, conn: str) -> None:
        self._idle.put_nowait(conn)
        self.resource.sub(in_use=1)
        self.resource.add(idle=1)


async def query(pool: ConnectionPool, n: int) -> str:
    conn = await pool.acquire()
    try:
        await asyncio.sleep(0.002)  # the query itself
        return f"query {n} on {conn}"
    finally:
        pool.release(conn)


async def main() -> None:
    pool = ConnectionPool(size=2)
    results = await asyncio.gather(
        *(asyncio.create_task(query(pool, n), name=f"query-{n}") for n in range(4))
    )
    for line in results:
        print(line)
    print("pool state:", pool.resource.state)


if __name__ == "__main__":
    asyncio.run(main())
