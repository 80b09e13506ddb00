"""I/O as resources (issue 12 item 4): streams, the loop's socket methods,
subprocesses, opening a connection and resolving a name, each waited on for
real (loopback TCP, a socket pair, a child Python, the resolver) and read back
from the spans the SDK ended."""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from conftest import Traced, by_name, one
from otel_asyncres.bridge import semconv as sc

STATE = sc.RESOURCE_STATE_PREFIX


def _spans(traced: Traced) -> list[ReadableSpan]:
    traced.flush()
    return list(traced.exporter.get_finished_spans())


def _op_under(spans: list[ReadableSpan], source: str, task: str) -> ReadableSpan:
    """The one op of ``source`` made by task ``task``, checked to hang under it."""
    (task_span,) = [s for s in spans if s.name == f"task {task}"]
    ops = [s for s in by_name(spans, f"async_op {source}") if s.parent.span_id == task_span.context.span_id]
    assert len(ops) == 1, [s.name for s in spans]
    return ops[0]


def _resource_of(spans: list[ReadableSpan], op: ReadableSpan) -> ReadableSpan:
    rid = op.attributes[sc.RESOURCE_ID]
    (resource,) = [s for s in spans if s.name.startswith("resource ") and s.attributes[sc.RESOURCE_ID] == rid]
    linked = {link.context.span_id for link in op.links if link.attributes[sc.LINK_RELATION] == "resource"}
    assert linked == {resource.context.span_id}
    return resource


def test_a_stream_echo_waits_on_its_reader_and_writer(traced: Traced) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def client(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.01)  # the server waits for the line meanwhile
        writer.write(b"hello\n")
        reply = await reader.readexactly(6)
        writer.close()
        await writer.wait_closed()
        return reply

    async def main() -> bytes:
        server = await asyncio.start_server(
            lambda r, w: asyncio.create_task(handle(r, w), name="handler"), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        reply = await asyncio.create_task(client(port), name="client")
        server.close()
        await server.wait_closed()
        return reply

    assert asyncio.run(main()) == b"HELLO\n"
    spans = _spans(traced)
    served = _op_under(spans, "StreamReader.readline", "handler")
    reader = _resource_of(spans, served)
    assert reader.name == "resource asyncio.StreamReader"
    assert reader.attributes[sc.RESOURCE_KIND] == "IO"
    assert reader.attributes[STATE + "buffered.unit"] == "By"
    assert served.attributes[sc.ASYNC_OP_OUTCOME] == "ok"
    assert served.end_time - served.start_time >= 5_000_000  # it waited for the client's sleep
    read = _op_under(spans, "StreamReader.readexactly", "client")
    assert _resource_of(spans, read).name == "resource asyncio.StreamReader"
    closed = _op_under(spans, "StreamWriter.wait_closed", "client")
    writer = _resource_of(spans, closed)
    assert writer.name == "resource asyncio.StreamWriter"
    assert writer.attributes[STATE + "closing"] is True
    opened = _op_under(spans, "open_connection", "client")
    assert opened.attributes[STATE + "host"] == "127.0.0.1"
    assert int(opened.attributes[STATE + "port"]) > 0
    assert by_name(spans, "resource asyncio.open_connection") == []  # folded into its op


def test_the_loops_socket_methods_wait_on_the_socket(traced: Traced) -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)

        async def later() -> None:
            await asyncio.sleep(0.01)
            await loop.sock_sendall(a, b"ping")

        sender = asyncio.create_task(later(), name="sender")
        data = await asyncio.create_task(loop.sock_recv(b, 16), name="receiver")
        await sender
        a.close()
        b.close()
        return data

    assert asyncio.run(main()) == b"ping"
    spans = _spans(traced)
    received = one(spans, "async_op sock_recv")
    sock = _resource_of(spans, received)
    assert sock.name == "resource socket.socket"
    assert sock.attributes[STATE + "fd"] > 0  # as last seen, when the wait ended


def test_a_subprocess_is_waited_on(traced: Traced) -> None:
    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('hi')", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        other = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)")
        return out, await other.wait()

    assert asyncio.run(main()) == (b"hi\n", 3)
    spans = _spans(traced)
    talked = one(spans, "async_op Process.communicate")
    process = _resource_of(spans, talked)
    assert process.name == "resource asyncio.subprocess.Process"
    assert (process.attributes[STATE + "exited"], process.attributes[STATE + "returncode"]) == (True, 0)
    waited = _resource_of(spans, one(spans, "async_op Process.wait"))
    assert (waited.attributes[STATE + "exited"], waited.attributes[STATE + "returncode"]) == (True, 3)
    assert waited.attributes[STATE + "pid"] > 0


def test_a_name_lookup_is_one_span(traced: Traced) -> None:
    async def main() -> int:
        found = await asyncio.get_running_loop().getaddrinfo("localhost", 80)
        return len(found)

    assert asyncio.run(main()) > 0
    spans = _spans(traced)
    lookup = one(spans, "async_op getaddrinfo")
    assert (lookup.attributes[STATE + "host"], lookup.attributes[STATE + "port"]) == ("localhost", "80")
    assert lookup.attributes[sc.RESOURCE_KIND] == "IO"
    assert by_name(spans, "resource asyncio.getaddrinfo") == []


def test_aiohttps_own_reads_are_ops_with_the_bytes_received(traced: Traced) -> None:
    """aiohttp reads through streams of its own: a handler reading a request
    body that is still arriving, and a client waiting for its response, wait
    in ops that carry what the stream had received (``total_bytes``)."""
    import aiohttp
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body[::-1])

    async def body_in_two_parts() -> Any:
        yield b"0123456789" * 100
        await asyncio.sleep(0.01)  # the handler waits for the rest meanwhile
        yield b"abcdefghij" * 100

    async def main() -> bytes:
        app = web.Application()
        app.router.add_post("/echo", echo)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/echo"
        body = body_in_two_parts()
        async with aiohttp.ClientSession() as session, session.post(url, data=body) as response:
            reply = await response.read()
        await runner.cleanup()
        return reply

    assert asyncio.run(main()) == (b"0123456789" * 100 + b"abcdefghij" * 100)[::-1]
    spans = _spans(traced)
    reads = [
        s
        for s in spans
        if s.name.startswith("async_op StreamReader.")
        and s.attributes[sc.RESOURCE_CONCRETE_TYPE] == "aiohttp.StreamReader"
    ]
    assert reads, [s.name for s in spans]
    # The handler waited for the second part: the read ended with both received.
    assert max(s.attributes[STATE + "total_bytes"] for s in reads) == 2000
    assert all(s.attributes[STATE + "total_bytes.unit"] == "By" for s in reads)
    assert by_name(spans, "resource aiohttp.StreamReader") == []  # folded into its ops
    assert by_name(spans, "async_op DataQueue.read"), [s.name for s in spans]
