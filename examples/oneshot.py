"""The seed's one-shot example, ported to asyncio.

A task named ``tokio-oneshot`` creates a future (asyncio's one-shot channel),
spawns ``receiver``, which awaits it, and ``sender``, which sets it to 5, then
waits for the receiver and says good-bye.

Run it instrumented:  otel-asyncres run examples/oneshot.py
"""

import asyncio


async def receiver(rx: asyncio.Future) -> None:
    value = await rx
    print(f"received {value}")


async def sender(tx: asyncio.Future) -> None:
    await asyncio.sleep(0.01)
    tx.set_result(5)


async def oneshot() -> None:
    future = asyncio.get_running_loop().create_future()
    receiving = asyncio.create_task(receiver(future), name="receiver")
    sending = asyncio.create_task(sender(future), name="sender")
    await receiving
    await sending  # done by now: it set the value that woke the receiver
    print("good-bye")


async def main() -> None:
    await asyncio.create_task(oneshot(), name="tokio-oneshot")


if __name__ == "__main__":
    asyncio.run(main())
