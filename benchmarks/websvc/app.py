"""The measured web service: a small aiohttp app shaped like a real one.

``GET /square/{n}`` takes a connection from a pool (``asyncio.Semaphore(2)``),
hands the job to a background worker through an ``asyncio.Queue`` with a
future to answer on, awaits that future, gives the connection back, then
sleeps a little (a short downstream call) and answers ``<n> squared is <n*n>``.
``GET /stats`` answers the number of squares served, as JSON.

Run as a script (``python app.py --port N``) so that every way of launching a
Python program (plain, ``opentelemetry-instrument``, ``otel-asyncres run``)
runs the same file. SIGINT or SIGTERM stops it cleanly (aiohttp's
``run_app``), so exporters flush at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

POOL_SIZE = 2
SLEEP = 0.001  # seconds, per request, outside the pool

Job = tuple[int, "asyncio.Future[int]"]

POOL = web.AppKey("pool", asyncio.Semaphore)
JOBS = web.AppKey("jobs", asyncio.Queue)
SERVED = web.AppKey("served", list)


def body(n: int) -> str:
    """The answer to ``/square/{n}`` (the runner checks it)."""
    return f"{n} squared is {n * n}\n"


async def worker(jobs: asyncio.Queue[Job]) -> None:
    while True:
        n, answer = await jobs.get()
        if not answer.done():
            answer.set_result(n * n)
        jobs.task_done()


async def square(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    async with request.app[POOL]:
        await request.app[JOBS].put((n, answer))
        result = await answer
    await asyncio.sleep(SLEEP)
    request.app[SERVED][0] += 1
    return web.Response(text=f"{n} squared is {result}\n")


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"served": request.app[SERVED][0]})


async def background(app: web.Application) -> AsyncIterator[None]:
    jobs: asyncio.Queue[Job] = asyncio.Queue()
    app[JOBS] = jobs
    app[POOL] = asyncio.Semaphore(POOL_SIZE)
    task = asyncio.create_task(worker(jobs), name="worker")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_app() -> web.Application:
    app = web.Application()
    app[SERVED] = [0]
    app.cleanup_ctx.append(background)
    app.router.add_get("/square/{n}", square)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(
        make_app(), host="127.0.0.1", port=args.port, print=None, access_log=None, shutdown_timeout=2.0
    )


if __name__ == "__main__":
    main()
