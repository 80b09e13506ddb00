"""A real aiohttp server and client over 127.0.0.1: responses, a handler's
error, a missing route, a streamed body, a client timeout and a request
cancelled by its caller, each reported as the client sees it."""

import asyncio

import _parity  # noqa: F401
import aiohttp
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": request.query.get("name", "world")})


async def broken(request: web.Request) -> web.Response:
    raise ValueError("the handler failed")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(0.5)
    return web.Response(text="too late")


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for i in range(3):
        await response.write(f"chunk {i}\n".encode())
        await asyncio.sleep(0.001)
    await response.write_eof()
    return response


async def main() -> None:
    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/broken", broken)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stream", stream)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    print("server: started")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/hello", params={"name": "parity"}) as response:
            print("hello:", response.status, await response.json())
        replies = await asyncio.gather(*(session.get(f"{base}/hello?name={n}") for n in "abc"))
        print("concurrent:", [(r.status, (await r.json())["hello"]) for r in replies])
        async with session.get(f"{base}/broken") as response:
            print("broken:", response.status)
        async with session.get(f"{base}/missing") as response:
            print("missing:", response.status)
        async with session.get(f"{base}/stream") as response:
            print("stream:", response.status, [line async for line in response.content])
        try:
            await session.get(f"{base}/slow", timeout=aiohttp.ClientTimeout(total=0.05))
        except asyncio.TimeoutError as exc:
            print("timeout:", type(exc).__name__)
        request = asyncio.create_task(session.get(f"{base}/slow"))
        await asyncio.sleep(0.05)
        request.cancel()
        try:
            await request
        except asyncio.CancelledError:
            print("cancelled: CancelledError, cancelled() =", request.cancelled())
    await runner.cleanup()
    print("server: stopped")


asyncio.run(main())
