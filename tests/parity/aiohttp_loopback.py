"""A real aiohttp server and client over loopback (issue 12 item 5).

Normal responses (JSON, a POST echo, a 404, concurrent requests), a handler
that raises (a 500, logged with its traceback by aiohttp), a client cancelled
mid-request, a client that times out (``aiohttp.ClientTimeout``), a streaming
response read line by line, and a stream whose reader gives up
(``asyncio.wait_for``) between two chunks.

Deterministic by construction: the server's lines are printed before the
response they precede is sent, the client's after it has arrived, and every
wait that a timeout or a cancellation ends is one that nothing else ends (an
Event set only afterwards), so no line depends on timing; the handler that the
client's ClientTimeout leaves behind prints nothing, since whether it has
begun by then is the machine's business. No port, address or
duration is printed.
"""

import asyncio
import logging
import sys

import _parity  # noqa: F401
import aiohttp
from aiohttp import web

# aiohttp logs a handler's exception ("Error handling request") with its traceback.
logging.basicConfig(stream=sys.stdout, format="LOG %(levelname)s %(name)s: %(message)s")

#: Set by the client once it has seen what the waiting handlers wait for.
RELEASE = web.AppKey("release", asyncio.Event)
#: Set by the slow handler when it has begun, so the client knows when to cancel.
STARTED = web.AppKey("started", asyncio.Event)
#: How the slow handler and the stalled stream ended: each resolves its future with a word.
ENDING = web.AppKey("ending", asyncio.Future)
STALLED = web.AppKey("stalled", asyncio.Future)
#: The stream's reader acknowledges each line, so the next is written after it.
ACKS = web.AppKey("acks", asyncio.Queue)


async def hello(request: web.Request) -> web.Response:
    name = request.query.get("name", "world")
    print(f"server: hello {name}")
    return web.json_response({"hello": name})


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    print(f"server: echo {len(body)} bytes")
    return web.Response(body=body[::-1], content_type="application/octet-stream")


async def fail(request: web.Request) -> web.Response:
    print("server: failing")
    raise ValueError("the handler failed")


async def refuse(request: web.Request) -> web.Response:
    print("server: refusing")
    raise web.HTTPForbidden(text="no entry")


async def slow(request: web.Request) -> web.Response:
    """Waits until released; records whether it was cancelled meanwhile."""
    ending: asyncio.Future[str] = request.app[ENDING]
    print("server: slow request begins")
    request.app[STARTED].set()
    try:
        await request.app[RELEASE].wait()
    except asyncio.CancelledError:
        ending.set_result("cancelled")
        raise
    ending.set_result("released")
    return web.Response(text="late")


async def hang(request: web.Request) -> web.Response:
    """Waits until released, silently: whether it has begun when the client
    times out depends on the machine's speed, so it says nothing."""
    await request.app[RELEASE].wait()
    return web.Response(text="late")


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_type = "text/plain"
    acks: asyncio.Queue[int] = request.app[ACKS]
    for i in range(3):
        print(f"server: stream line {i}")
        if i == 0:  # the headers may leave now: the line above is printed before
            await response.prepare(request)
        await response.write(f"line {i}\n".encode())
        assert await acks.get() == i
    print("server: stream ends")
    await response.write_eof()
    return response


async def stall(request: web.Request) -> web.StreamResponse:
    """Writes one line, then waits until released: the reader gives up between chunks."""
    response = web.StreamResponse()
    print("server: stall writes its first line")
    await response.prepare(request)
    await response.write(b"first\n")
    try:
        await request.app[RELEASE].wait()
    except asyncio.CancelledError:
        request.app[STALLED].set_result("cancelled")
        raise
    return response


def make_app() -> web.Application:
    app = web.Application()
    app[RELEASE] = asyncio.Event()
    app[STARTED] = asyncio.Event()
    app[ENDING] = asyncio.get_running_loop().create_future()
    app[STALLED] = asyncio.get_running_loop().create_future()
    app[ACKS] = asyncio.Queue()
    app.router.add_get("/hello", hello)
    app.router.add_post("/echo", echo)
    app.router.add_get("/fail", fail)
    app.router.add_get("/refuse", refuse)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang", hang)
    app.router.add_get("/stream", stream)
    app.router.add_get("/stall", stall)
    return app


async def normal(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(f"{base}/hello", params={"name": "parity"}) as r:
        print("client: hello", r.status, r.content_type, await r.json())
    async with session.post(f"{base}/echo", data=b"abcdef") as r:
        print("client: echo", r.status, await r.read())
    async with session.get(f"{base}/missing") as r:
        print("client: missing", r.status, r.reason)
    names = ["a", "b", "c"]
    replies = await asyncio.gather(*(fetch_json(session, f"{base}/hello?name={n}") for n in names))
    print("client: concurrent", replies)


async def fetch_json(session: aiohttp.ClientSession, url: str) -> object:
    async with session.get(url) as r:
        return await r.json()


async def errors(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(f"{base}/fail") as r:
        print("client: fail", r.status, r.reason)
        try:
            r.raise_for_status()
        except aiohttp.ClientResponseError as exc:
            print("client: raise_for_status", type(exc).__name__, exc.status, exc.message)
    async with session.get(f"{base}/refuse") as r:
        print("client: refuse", r.status, await r.text())


async def cancellation(app: web.Application, session: aiohttp.ClientSession, base: str) -> None:
    async def request() -> str:
        async with session.get(f"{base}/slow") as r:
            return await r.text()

    task = asyncio.create_task(request(), name="cancelled-request")
    await app[STARTED].wait()
    print("client: cancelling the request")
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print("client: request cancelled, task.cancelled() =", task.cancelled())
    # The server notices the closed connection and cancels its handler.
    print("server: slow request ended", await app[ENDING])


async def timeouts(app: web.Application, session: aiohttp.ClientSession, base: str) -> None:
    try:
        async with session.get(f"{base}/hang", timeout=aiohttp.ClientTimeout(total=0.1)) as r:
            print("client: unexpected", r.status)
    except asyncio.TimeoutError as exc:
        print("client: timed out", type(exc).__name__, isinstance(exc, aiohttp.ServerTimeoutError))

    async with session.get(f"{base}/stall") as r:
        print("client: stall", r.status, await r.content.readline())
        try:
            # Not aiohttp's sock_read: it also bounds the wait for the first line.
            await asyncio.wait_for(r.content.readline(), 0.05)
        except asyncio.TimeoutError as exc:
            print("client: stall read timed out", type(exc).__name__)
    # Leaving the block closed the connection: the server cancels its handler.
    print("server: stall ended", await app[STALLED])


async def streaming(app: web.Application, session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(f"{base}/stream") as r:
        print("client: stream", r.status, r.headers.get("Transfer-Encoding"))
        for i in range(3):
            print("client: read", await r.content.readline())
            app[ACKS].put_nowait(i)
        print("client: end", await r.content.read(), r.content.at_eof())


async def main() -> None:
    app = make_app()
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    print("main: serving")
    try:
        async with aiohttp.ClientSession() as session:
            await normal(session, base)
            await errors(session, base)
            await cancellation(app, session, base)
            await timeouts(app, session, base)
            await streaming(app, session, base)
        print("client: session closed")
    finally:
        app[RELEASE].set()
        await runner.cleanup()
    print("main: server cleaned up")


asyncio.run(main())
