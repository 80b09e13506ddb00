"""A crawler fetching fake URLs, at most two at a time, behind an asyncio.Semaphore.

Every URL gets its own task, named after it. A fetch is an ``asyncio.sleep``
of a fixed latency standing in for network I/O. The semaphore lets two fetches
run at once and queues the rest. The results are printed in URL order after
``gather``, so the output does not depend on which fetch finishes first.

Run it instrumented:  otel-asyncres run examples/semaphore_crawler.py

What to look at: ``resource asyncio.Semaphore`` (permits and waiters going up
and down in its ``state_update`` events); under every task that found no free
permit, an ``async_op Semaphore.acquire`` span (its queueing time) linked
``woken_by`` the fetch whose release passed the permit on; and in each fetch an
``async_op sleep`` span carrying its timer (kind Timer, no span of its own)
with its latency as ``duration``.
"""

import asyncio

CONCURRENCY = 2
# URL -> simulated latency in seconds (small and fixed: the whole crawl takes a few ms).
LATENCY = {
    "https://example.com/": 0.003,
    "https://example.com/about": 0.001,
    "https://example.com/blog": 0.002,
    "https://example.com/blog/1": 0.001,
    "https://example.com/blog/2": 0.002,
    "https://example.com/contact": 0.001,
}


class Crawler:
    def __init__(self) -> None:
        self.limit = asyncio.Semaphore(CONCURRENCY)
        self.in_flight = 0
        self.max_in_flight = 0

    async def fetch(self, url: str) -> str:
        async with self.limit:  # waits here while CONCURRENCY fetches are running
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            await asyncio.sleep(LATENCY[url])  # the "network"
            self.in_flight -= 1
        return f"{url}: 200 OK, {len(url) * 10} bytes"


async def main() -> None:
    crawler = Crawler()
    tasks = [asyncio.create_task(crawler.fetch(url), name=f"fetch {url}") for url in LATENCY]
    for line in await asyncio.gather(*tasks):
        print(line)
    print(f"{len(tasks)} pages, at most {crawler.max_in_flight} fetches at once")


if __name__ == "__main__":
    asyncio.run(main())
