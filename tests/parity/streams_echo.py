"""A TCP echo server and client on 127.0.0.1 with asyncio streams."""

import asyncio

import _parity  # noqa: F401


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    print("server: connection")
    line = await reader.readline()
    print("server: got", line)
    writer.write(line.upper())
    print("server: replied")
    rest = await reader.read()
    print("server: eof, rest", rest)
    writer.close()
    await writer.wait_closed()
    print("server: closed")


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print("main: serving")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    print("client: connected")
    writer.write(b"hello\n")
    print("client: sent")
    reply = await reader.readline()
    print("client: reply", reply)
    writer.write_eof()
    print("client: wrote eof")
    print("client: read to end", await reader.read())
    writer.close()
    await writer.wait_closed()
    print("client: closed")
    server.close()
    await server.wait_closed()
    print("main: server closed")


asyncio.run(main())
