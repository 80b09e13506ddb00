"""An ``asyncio.start_server`` echo server and several concurrent stream clients.

The server speaks a line protocol with StreamReader and StreamWriter:
``ECHO <text>`` answers the text (``readline``), ``BYTES <n>`` reads ``n`` raw
bytes (``readexactly``) and answers them reversed, ``FIELD`` reads up to a
``;`` (``readuntil``), ``BYE`` answers and closes. Three well-behaved clients
run at once (each waits for the others to connect before it speaks), one
disconnects without a word, and one sends half a line and closes.

Deterministic by construction: each conversation is logged into its own
transcript (the server's lines before the reply they precede, the client's
after the reply arrived), and the transcripts are printed at the end in a
fixed order, so how the loop interleaves connections never shows. No port or
address is printed.
"""

import asyncio

import _parity  # noqa: F401

TRANSCRIPTS: dict[str, list[str]] = {}


def log(who: str, line: str) -> None:
    TRANSCRIPTS.setdefault(who, []).append(line)


async def serve_commands(name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    """Answer commands until BYE or end of stream; say how the conversation ended."""
    while True:
        line = await reader.readline()
        if not line:
            return "eof"
        if not line.endswith(b"\n"):
            log(name, f"server: incomplete line at eof {line!r}")
            return "incomplete"
        command, _, arg = line.decode().rstrip("\n").partition(" ")
        log(name, f"server: {command} {arg!r}")
        if command == "ECHO":
            writer.write(f"{arg}\n".encode())
        elif command == "BYTES":
            data = await reader.readexactly(int(arg))
            log(name, f"server: raw {data!r}")
            writer.write(data[::-1] + b"\n")
        elif command == "FIELD":
            field = await reader.readuntil(b";")
            writer.write(b"field " + field[:-1] + b"\n")
        elif command == "BYE":
            writer.write(b"bye\n")
            await writer.drain()
            return "bye"
        else:
            writer.write(b"unknown\n")
        await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    hello = await reader.readline()
    name = hello.decode().strip() or "anonymous"
    if hello.endswith(b"\n"):
        log(name, "server: greeted")
        writer.write(b"welcome " + hello)
        await writer.drain()
        ending = await serve_commands(name, reader, writer)
    else:
        ending = "silent" if not hello else "incomplete"
    ENDINGS[name].set_result(ending)
    writer.close()
    await writer.wait_closed()


ENDINGS: dict[str, asyncio.Future[str]] = {}


class Rendezvous:
    """Lets ``n`` clients wait until all of them are connected (asyncio.Barrier is 3.11+)."""

    def __init__(self, n: int) -> None:
        self.missing = n
        self.done = asyncio.Event()

    async def arrive(self) -> None:
        self.missing -= 1
        if not self.missing:
            self.done.set()
        await self.done.wait()


async def talker(name: str, port: int, everyone_connected: Rendezvous) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{name}\n".encode())
    await writer.drain()
    log(name, f"{name}: {await reader.readline()!r}")
    await everyone_connected.arrive()
    for request in [b"ECHO hi from " + name.encode() + b"\n", b"BYTES 5\nabcde", b"FIELD\nx=1;"]:
        writer.write(request)
        await writer.drain()
        log(name, f"{name}: {await reader.readline()!r}")
    writer.write(b"BYE\n")
    log(name, f"{name}: {await reader.readline()!r}")
    log(name, f"{name}: then {await reader.read()!r}, at_eof={reader.at_eof()}")
    writer.close()
    await writer.wait_closed()


async def silent(port: int) -> None:
    """Connects and closes without sending anything."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()


async def half_line(name: str, port: int) -> None:
    """Greets, then sends half a command and closes its side early."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{name}\n".encode())
    log(name, f"{name}: {await reader.readline()!r}")
    writer.write(b"ECHO never fini")
    log(name, f"{name}: closing early")  # before: the server's next line follows from it
    writer.close()
    await writer.wait_closed()


async def main() -> None:
    loop = asyncio.get_running_loop()
    talkers = ["alice", "bob", "carol"]
    for name in [*talkers, "anonymous", "dave"]:
        ENDINGS[name] = loop.create_future()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print("main: serving")
    rendezvous = Rendezvous(len(talkers))
    async with server:
        clients = [talker(name, port, rendezvous) for name in talkers]
        await asyncio.gather(*clients, silent(port), half_line("dave", port))
        print("main: clients done")
        for name, ending in ENDINGS.items():
            print(f"server: {name} ended {await ending}")
        server.close()
        await server.wait_closed()
    print("main: server closed")
    for name in sorted(TRANSCRIPTS):
        print(f"--- {name}")
        for line in TRANSCRIPTS[name]:
            print(line)


asyncio.run(main())
