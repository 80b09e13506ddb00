"""A start_server echo server with streams and several clients at once: each
echoes its lines in turn, one client disconnects early (the server sees its
EOF mid-conversation), one half-closes and reads the rest, and the server
reports what each connection did once all are done."""

import asyncio

import _parity  # noqa: F401

done: dict[str, str] = {}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    name = (await reader.readline()).decode().strip()
    lines = 0
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
        lines += 1
    done[name] = f"{lines} lines, then EOF"
    writer.close()
    await writer.wait_closed()


async def client(port: int, name: str, lines: int, early: bool = False) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{name}\n".encode())
    replies = []
    for i in range(lines):
        writer.write(f"{name} line {i}\n".encode())
        await writer.drain()
        replies.append((await reader.readline()).decode().strip())
        if early and i == 0:
            writer.close()  # gone without a word after its first line
            await writer.wait_closed()
            return f"{name}: left early after {replies}"
    writer.write_eof()
    rest = await reader.read()
    writer.close()
    await writer.wait_closed()
    return f"{name}: {replies} rest={rest!r}"


async def main() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    results = await asyncio.gather(
        client(port, "a", 3), client(port, "b", 2, early=True), client(port, "c", 4), client(port, "d", 1)
    )
    for line in results:
        print(line)
    while len(done) < 4:
        await asyncio.sleep(0.001)
    server.close()
    await server.wait_closed()
    for name in sorted(done):
        print(f"server: {name}: {done[name]}")


asyncio.run(main())
