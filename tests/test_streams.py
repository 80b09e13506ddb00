"""Streams, sockets, subprocesses and DNS as resources (docs/mapping.md, *I/O resources*).

Real sockets over loopback, a real subprocess and the real resolver: each wait
is an ``async_op`` under the waiting task, linked to its resource's span, with
the bytes it moved; what the program sees (results, exceptions, tracebacks,
cancellation) is what it sees uninstrumented.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from conftest import Runner, Traced, by_name, one
from otel_asyncres.bridge import semconv as sc

THIS_FILE = os.path.abspath(__file__)
STATE = sc.RESOURCE_STATE_PREFIX
OP_STATE = sc.ASYNC_OP_STATE_PREFIX
PACKAGE_DIR = os.path.dirname(os.path.abspath(sc.__file__)).rsplit(os.sep, 1)[0]


def links(span: ReadableSpan) -> dict[str, int]:
    return {link.attributes[sc.LINK_RELATION]: link.context.span_id for link in span.links}


def op_of(spans: list[ReadableSpan], source: str) -> ReadableSpan:
    return one(spans, f"async_op {source}")


def resource_of(spans: list[ReadableSpan], op: ReadableSpan) -> ReadableSpan:
    (span,) = [
        s
        for s in spans
        if s.name.startswith("resource ") and s.attributes[sc.RESOURCE_ID] == op.attributes[sc.RESOURCE_ID]
    ]
    return span


def check_wait(spans: list[ReadableSpan], op: ReadableSpan, task: str, concrete_type: str) -> ReadableSpan:
    """The op is the waiting task's child, in user code, linked to its
    resource's span (a child of the task that first waited on it); ended ok."""
    waiting = one(spans, f"task {task}")
    assert op.parent is not None and op.parent.span_id == waiting.context.span_id
    assert op.attributes[sc.TASK_ID] == waiting.attributes[sc.TASK_ID]
    assert op.attributes[sc.ASYNC_OP_OUTCOME] == "ok"
    assert op.attributes[sc.CODE_FILE_PATH] == THIS_FILE
    resource = resource_of(spans, op)
    assert resource.name == f"resource {concrete_type}"
    assert resource.attributes[sc.RESOURCE_KIND] == "IO" or concrete_type.endswith("Process")
    assert links(op)["resource"] == resource.context.span_id
    assert resource.parent is not None and resource.parent.span_id == waiting.context.span_id
    assert resource.attributes[sc.RESOURCE_OPS] >= 1
    return resource


async def serve(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> Any:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


# -- StreamReader, StreamWriter -------------------------------------------------------------------


def test_readline_is_an_op_on_a_stream_reader(traced: Traced, run: Runner) -> None:
    """The issue's case: a wait on ``readline()`` is an async op on a
    ``resource asyncio.StreamReader``, with the bytes the line had."""
    results: dict[str, Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        await asyncio.sleep(0.01)  # the client's readline must wait
        writer.write(b"first part, ")
        await asyncio.sleep(0.01)  # and wait again, in the same op
        writer.write(b"then the end\nnext\n")
        await writer.drain()
        writer.close()

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"go\n")
        results["line"] = await reader.readline()
        results["next"] = await reader.readline()  # buffered: no wait, no op
        results["rest"] = await reader.read()
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        server, port = await serve(handle)
        await asyncio.create_task(client(port), name="client")
        server.close()
        await server.wait_closed()

    run(main)
    assert results == {"line": b"first part, then the end\n", "next": b"next\n", "rest": b""}
    spans = traced.spans()
    client_id = one(spans, "task client").attributes[sc.TASK_ID]
    lines = [
        s for s in by_name(spans, "async_op StreamReader.readline") if s.attributes[sc.TASK_ID] == client_id
    ]
    assert len(lines) == 1, "the buffered readline waited for nothing: no op"
    (line,) = lines
    assert line.attributes[OP_STATE + "bytes"] == len(results["line"])
    assert line.attributes[sc.ASYNC_OP_POLLS] >= 3, "resumed by the first part, parked again in the same op"
    reader = check_wait(spans, line, "client", "asyncio.StreamReader")
    assert reader.attributes[STATE + "eof"] is True
    assert reader.attributes[STATE + "buffered"] == 0
    assert reader.attributes[STATE + "buffered.unit"] == "By"
    assert reader.attributes[STATE + "peer"] == f"127.0.0.1:{line_port(reader)}"
    read = [
        s
        for s in by_name(spans, "async_op StreamReader.read")
        if s.attributes[sc.RESOURCE_ID] == reader.attributes[sc.RESOURCE_ID]
    ]
    assert [s.attributes[OP_STATE + "bytes"] for s in read] == [0]


def line_port(reader: ReadableSpan) -> str:
    return str(reader.attributes[STATE + "peer"]).rsplit(":", 1)[1]


def test_read_to_eof_counts_every_block_and_readexactly_readuntil(traced: Traced, run: Runner) -> None:
    results: dict[str, Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for chunk in (b"abc", b"defg", b"--", b"|", b"x" * 5000, b"tail"):
            await asyncio.sleep(0.005)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        results["exactly"] = await reader.readexactly(5)
        results["until"] = await reader.readuntil(b"|")
        results["rest"] = await reader.read()
        writer.close()

    async def main() -> None:
        server, port = await serve(handle)
        await asyncio.create_task(client(port), name="client")
        server.close()
        await server.wait_closed()

    run(main)
    assert results == {"exactly": b"abcde", "until": b"fg--|", "rest": b"x" * 5000 + b"tail"}
    spans = traced.spans()
    for source, key in (("readexactly", "exactly"), ("readuntil", "until"), ("read", "rest")):
        op = op_of(spans, f"StreamReader.{source}")
        check_wait(spans, op, "client", "asyncio.StreamReader")
        assert op.attributes[OP_STATE + "bytes"] == len(results[key]), source


def test_drain_waits_for_the_write_buffer(traced: Traced, run: Runner) -> None:
    """A drain that waits is an op on the writer, with the buffer it waited on."""
    payload = b"y" * (8 << 20)
    received = bytearray()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)  # let the client's buffer fill up
        while chunk := await reader.read(1 << 16):
            received.extend(chunk)
        writer.close()

    async def client(port: int) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        server, port = await serve(handle)
        await asyncio.create_task(client(port), name="client")
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()

    run(main)
    assert bytes(received) == payload
    spans = traced.spans()
    drain = op_of(spans, "StreamWriter.drain")
    writer = check_wait(spans, drain, "client", "asyncio.StreamWriter")
    assert 0 < drain.attributes[OP_STATE + "write_buffer"] <= len(payload)
    assert writer.attributes[STATE + "closing"] is True


def test_stream_errors_and_cancellation_are_untouched(traced: Traced, run: Runner) -> None:
    """readexactly at EOF raises the same IncompleteReadError, with no frame
    of this package in its traceback; a cancelled readline is cancelled."""
    seen: dict[str, Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.01)
        writer.write(b"short")
        writer.close()

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await reader.readexactly(10)
        except asyncio.IncompleteReadError as exc:
            seen["partial"], seen["expected"] = exc.partial, exc.expected
            seen["frames"] = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
        writer.close()

    async def idle(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await reader.readline()
        finally:
            writer.close()

    async def main() -> None:
        server, port = await serve(handle)
        await asyncio.create_task(client(port), name="client")
        waiting = asyncio.create_task(idle(port), name="idle")
        await asyncio.sleep(0.005)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        server.close()
        await server.wait_closed()

    run(main)
    assert seen["partial"] == b"short" and seen["expected"] == 10
    assert not [f for f in seen["frames"] if f.startswith(PACKAGE_DIR)], seen["frames"]
    spans = traced.spans()
    cancelled = [
        s
        for s in by_name(spans, "async_op StreamReader.readline")
        if s.attributes[sc.ASYNC_OP_OUTCOME] == "cancelled"
    ]
    assert len(cancelled) == 1
    assert cancelled[0].parent.span_id == one(spans, "task idle").context.span_id


def test_a_read_in_a_request_lands_in_the_requests_trace(traced: Traced, run: Runner) -> None:
    """A connection handler task made before its request's span began (as a
    framework does): its readline inside the request is in the request's trace."""
    tracer = trace.get_tracer("app", tracer_provider=traced.session.provider)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with tracer.start_as_current_span("GET /stream"):
            writer.write(b"?\n")
            await reader.readline()
        writer.close()

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        await asyncio.sleep(0.01)
        writer.write(b"answer\n")
        await reader.read()
        writer.close()

    async def main() -> None:
        server, port = await serve(handle)
        await asyncio.create_task(client(port), name="client")
        server.close()
        await server.wait_closed()

    run(main)
    spans = traced.spans()
    request = one(spans, "GET /stream")
    handler = one(spans, "task test_a_read_in_a_request_lands_in_the_requests_trace.<locals>.handle")
    assert handler.context.trace_id != request.context.trace_id, "spawned before the request began"
    (read,) = [
        s
        for s in by_name(spans, "async_op StreamReader.readline")
        if s.context.trace_id == request.context.trace_id
    ]
    assert read.parent.span_id == request.context.span_id
    assert read.attributes[OP_STATE + "bytes"] == len(b"answer\n")
    assert links(read)["awaited_by"] == handler.context.span_id


# -- the loop's socket operations --------------------------------------------------------------


def test_sock_operations_are_ops_on_the_socket(traced: Traced, loop_kind: str, run: Runner) -> None:
    if loop_kind == "uvloop":
        pytest.skip("uvloop's sock_* are Cython coroutines, awaited through a wrapper that hides them")
    got: dict[str, Any] = {}

    async def server(listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(listener)
        with conn:
            got["data"] = await loop.sock_recv(conn, 100)
            buf = bytearray(100)
            got["n"] = await loop.sock_recv_into(conn, buf)
            got["into"] = bytes(buf[: got["n"]])
            await loop.sock_sendall(conn, b"pong" * 10)

    async def client(port: int) -> None:
        loop = asyncio.get_running_loop()
        with socket.socket() as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await asyncio.sleep(0.01)
            await loop.sock_sendall(sock, b"ping")
            await asyncio.sleep(0.01)
            await loop.sock_sendall(sock, b"again")
            got["reply"] = await loop.sock_recv(sock, 100)

    async def main() -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            port = listener.getsockname()[1]
            serving = asyncio.create_task(server(listener), name="server")
            await asyncio.sleep(0.01)  # the accept waits
            await asyncio.create_task(client(port), name="client")
            await serving

    run(main)
    assert got == {"data": b"ping", "n": 5, "into": b"again", "reply": b"pong" * 10}
    spans = traced.spans()
    accept = op_of(spans, "sock_accept")
    listener = check_wait(spans, accept, "server", "socket.socket")
    assert str(accept.attributes[OP_STATE + "peer"]).startswith("127.0.0.1:")
    assert listener.attributes[STATE + "local"].startswith("127.0.0.1:")
    assert isinstance(listener.attributes[STATE + "fd"], int)
    recvs = sorted(by_name(spans, "async_op sock_recv"), key=lambda s: s.start_time)
    assert [s.attributes[OP_STATE + "bytes"] for s in recvs] == [4, 40]
    server_recv, client_recv = recvs
    check_wait(spans, server_recv, "server", "socket.socket")
    check_wait(spans, client_recv, "client", "socket.socket")
    into = op_of(spans, "sock_recv_into")
    assert into.attributes[OP_STATE + "bytes"] == 5
    assert resource_of(spans, into) is resource_of(spans, server_recv)
    connect = by_name(spans, "async_op sock_connect")  # loopback connects at once: no wait
    for op in connect:
        assert op.attributes[OP_STATE + "peer"] == f"127.0.0.1:{got_port(op)}"


def got_port(op: ReadableSpan) -> str:
    return str(op.attributes[OP_STATE + "peer"]).rsplit(":", 1)[1]


# -- connections, DNS ---------------------------------------------------------------------------------


def test_open_connection_and_getaddrinfo(traced: Traced, loop_kind: str, run: Runner) -> None:
    """Connecting is one op with the address asked for (its resolution and
    connect inside it); a getaddrinfo is one op with host and port, and its
    executor work is the blocking task it waited for, not a second op."""
    found: dict[str, Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def client(port: int) -> None:
        _, writer = await asyncio.open_connection("localhost", port)
        writer.close()
        found["addresses"] = await asyncio.get_running_loop().getaddrinfo("localhost", port)

    async def main() -> None:
        server, port = await serve(handle)
        found["port"] = port
        await asyncio.create_task(client(port), name="client")
        server.close()
        await server.wait_closed()

    run(main)
    assert found["addresses"] == socket.getaddrinfo("localhost", found["port"])
    spans = traced.spans()
    waiting = one(spans, "task client")
    connect = op_of(spans, "open_connection")
    assert connect.parent.span_id == waiting.context.span_id
    assert connect.attributes[sc.RESOURCE_CONCRETE_TYPE] == "asyncio.Connection"
    assert connect.attributes[STATE + "host"] == "localhost"
    assert connect.attributes[STATE + "port"] == found["port"]
    assert connect.attributes[sc.CODE_FILE_PATH] == THIS_FILE
    assert by_name(spans, "resource asyncio.Connection") == []
    if loop_kind == "uvloop":
        return  # uvloop resolves in C: its getaddrinfo is not seen (docs/mapping.md)
    dns = op_of(spans, "getaddrinfo")
    assert dns.parent.span_id == waiting.context.span_id
    assert dns.attributes[sc.RESOURCE_CONCRETE_TYPE] == "asyncio.getaddrinfo"
    assert dns.attributes[STATE + "host"] == "localhost"
    assert dns.attributes[STATE + "port"] == found["port"]
    assert dns.attributes[sc.ASYNC_OP_OUTCOME] == "ok"
    # Not double counted: the resolver's thread is a blocking task, waited in this op only.
    assert by_name(spans, "async_op run_in_executor") == []
    blocking = [s for s in spans if s.attributes.get(sc.TASK_KIND) == "blocking"]
    assert blocking and all(s.parent.span_id == waiting.context.span_id for s in blocking)


# -- subprocesses ---------------------------------------------------------------------------------------


def test_subprocess_wait_and_communicate(traced: Traced, run: Runner) -> None:
    found: dict[str, Any] = {}
    script = "import sys, time; time.sleep(0.05); sys.stdout.write('o' * 12); "
    script += "sys.stderr.write('e' * 3); sys.exit(3)"

    async def main() -> None:
        pipe = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=pipe, stderr=pipe)
        found["pid"] = proc.pid
        found["output"] = await proc.communicate()
        found["returncode"] = proc.returncode
        sleeper = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(0.05)")
        found["waited"] = await sleeper.wait()

    run(main)
    assert found["output"] == (b"o" * 12, b"e" * 3) and found["returncode"] == 3 and found["waited"] == 0
    spans = traced.spans()
    communicate = op_of(spans, "Process.communicate")
    process = check_wait(
        spans, communicate, "test_subprocess_wait_and_communicate.<locals>.main", "asyncio.subprocess.Process"
    )
    assert process.attributes[sc.RESOURCE_KIND] == "Process"
    assert process.attributes[STATE + "pid"] == found["pid"]
    assert process.attributes[STATE + "returncode"] == 3
    assert communicate.attributes[OP_STATE + "stdout_bytes"] == 12
    assert communicate.attributes[OP_STATE + "stderr_bytes"] == 3
    wait = op_of(spans, "Process.wait")
    assert resource_of(spans, wait).attributes[STATE + "returncode"] == 0


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
    spans = traced.spans()
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
