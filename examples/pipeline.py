"""A two-stage pipeline over bounded queues: producer -> transformer -> consumer.

``producer`` puts six numbers on ``raw`` (its source takes 2 ms to open);
``transformer`` squares them onto ``cooked``; ``consumer`` prints them, taking
3 ms per item. Both queues hold at
most two items, so the slow consumer pushes back on the stages upstream of it.
A ``None`` at the end of the stream tells each stage to stop. Every ``get`` is
matched by a ``task_done``, and ``main`` waits with ``join`` until both queues
are fully processed: the program ends with every task finished normally.

Run it instrumented:  otel-asyncres run examples/pipeline.py

What to look at: the two ``resource asyncio.Queue`` spans (size, getters,
putters and unfinished_tasks in their ``state_update`` events, maxsize=2);
``async_op Queue.put`` spans in ``producer`` and ``transformer`` (backpressure:
the queue was full) and ``async_op Queue.get`` in ``transformer`` (its queue
was empty), each linked ``woken_by`` the stage on the other side of the queue;
``consumer``, the bottleneck, waits on its queue only once, at the start,
while the producer's source opens, and otherwise only on its sleeps; and
``async_op Queue.join`` under ``main``, woken by the last ``task_done``.
"""

import asyncio

ITEMS = 6
DONE = None  # end-of-stream marker


async def producer(raw: asyncio.Queue) -> None:
    await asyncio.sleep(0.002)  # opening the source: meanwhile the transformer waits
    for n in range(1, ITEMS + 1):
        await raw.put(n)  # waits while `raw` is full
    await raw.put(DONE)


async def transformer(raw: asyncio.Queue, cooked: asyncio.Queue) -> None:
    while True:
        n = await raw.get()  # waits while `raw` is empty
        await cooked.put(DONE if n is DONE else n * n)  # waits while `cooked` is full
        raw.task_done()
        if n is DONE:
            return


async def consumer(cooked: asyncio.Queue) -> None:
    while (square := await cooked.get()) is not DONE:
        await asyncio.sleep(0.003)  # the slow part of the pipeline
        print(f"consumed {square}")
        cooked.task_done()
    cooked.task_done()  # for the DONE marker


async def main() -> None:
    raw: asyncio.Queue = asyncio.Queue(maxsize=2)
    cooked: asyncio.Queue = asyncio.Queue(maxsize=2)
    stages = [
        asyncio.create_task(producer(raw), name="producer"),
        asyncio.create_task(transformer(raw, cooked), name="transformer"),
        asyncio.create_task(consumer(cooked), name="consumer"),
    ]
    await stages[0]  # everything is on its way once the producer is done...
    await raw.join()  # ...then every item was taken off `raw` and marked done
    await cooked.join()  # ...and every square was consumed
    await asyncio.gather(*stages)
    print(f"pipeline drained: {raw.qsize()} + {cooked.qsize()} items left")


if __name__ == "__main__":
    asyncio.run(main())
