"""Several tasks contending for one asyncio.Lock around a shared counter.

Four workers each increment a shared counter twice. The increment is a
read-modify-write with an ``await`` in the middle (standing in for I/O while
the record is held), so without the lock updates would be lost. With it, the
workers queue up: asyncio's Lock is FIFO, so the order of entry, and so the
output, is the same on every run.

Run it instrumented:  otel-asyncres run examples/mutex_contention.py

What to look at: the span ``resource asyncio.Lock`` (under ``main``, which
created it) with a ``state_update`` event for every lock, unlock and change in
the number of waiters; under each worker that had to wait, an ``async_op
Lock.acquire`` span whose duration is the time spent queued and whose
``woken_by`` link (in the console: ``woken by task #N (worker-k)``) names the
worker whose release handed the lock over.
"""

import asyncio

WORKERS = 4
ROUNDS = 2


class Account:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()  # the resource every worker contends for
        self.balance = 0


async def worker(name: str, account: Account) -> None:
    for round_ in range(ROUNDS):
        # Only the first worker finds the lock free; everyone else waits here.
        async with account.lock:
            before = account.balance
            await asyncio.sleep(0.001)  # simulated I/O while holding the lock
            account.balance = before + 1
            print(f"{name} round {round_}: {before} -> {account.balance}")


async def main() -> None:
    account = Account()
    workers = [
        asyncio.create_task(worker(f"worker-{i}", account), name=f"worker-{i}") for i in range(WORKERS)
    ]
    await asyncio.gather(*workers)
    print(f"final balance {account.balance} (expected {WORKERS * ROUNDS})")


if __name__ == "__main__":
    asyncio.run(main())
