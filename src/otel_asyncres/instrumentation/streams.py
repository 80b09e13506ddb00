"""I/O as resources: streams, sockets, subprocesses, connections, name lookups.

Tokio's instrumentation has no I/O resources, so the convention is ours, in
the style of the primitives: the object a task waits on is the resource (an
``asyncio.StreamReader``, an ``asyncio.StreamWriter``, a socket, a
subprocess), and each wait on it is an async op named after the method
(``StreamReader.readline``, ``sock_recv``, ``Process.wait`` ...). Opening a
connection and resolving a name have no object yet: like a sleep's timer, each
is a resource made for its one op and folded into it (``open_connection``,
``create_connection``, ``getaddrinfo``), which carries the peer's address.

Nothing is wrapped and no attribute write is hooked: these classes are on the
hot path of every network program. The ops are recognised as every op is, from
the coroutine chain a task is parked in (``operations``), and a resource's
state is read when an op on it begins, is resumed and ends. An I/O resource is
first seen at its first wait, so it is marked adopted and placed where that
wait is. uvloop's socket methods are compiled: waits in them are not ops.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import asyncio.subprocess
import weakref
from types import FrameType
from typing import Any

from ..model import StateValue
from .operations import ALWAYS, OperationWaits, OpSpec
from .resources import Family

#: Tokio's resource kinds are Sync, Timer and Channel; ours for I/O.
KIND = "IO"


def _goes_on(obj: Any, future: Any) -> bool:
    """Not done on resume: a read loops until it has what it asked for, a
    ``communicate`` waits for each pipe, a connection is made in steps; the
    op ends when it stops."""
    return False


# -- streams ---------------------------------------------------------------------------------


def _reader_state(reader: Any) -> dict[str, StateValue]:
    return {"buffered": len(reader._buffer), "eof": bool(reader._eof)}


def _writer_state(writer: Any) -> dict[str, StateValue]:
    transport = writer.transport
    return {
        "write_buffer": int(transport.get_write_buffer_size()) if transport is not None else 0,
        "closing": bool(transport.is_closing()) if transport is not None else True,
    }


READER = Family(None, "asyncio.StreamReader", KIND, _reader_state, units={"buffered": "By"})
WRITER = Family(None, "asyncio.StreamWriter", KIND, _writer_state, units={"write_buffer": "By"})

# -- sockets (the loop's sock_* methods) ----------------------------------------------------------


def _socket_state(sock: Any) -> dict[str, StateValue]:
    """``fd`` is -1 once the socket is closed."""
    return {"fd": int(sock.fileno())}


def _socket_of(frame: FrameType, coro: Any) -> Any:
    return frame.f_locals.get("sock")


SOCKET = Family(None, "socket.socket", KIND, _socket_state)
_SOCKET_OPS = ("sock_recv", "sock_recv_into", "sock_sendall", "sock_accept", "sock_connect")

# -- subprocesses -------------------------------------------------------------------------------


def _process_state(process: Any) -> dict[str, StateValue]:
    """``returncode`` means something once ``exited``."""
    code = process.returncode
    return {"pid": int(process.pid), "exited": code is not None, "returncode": int(code or 0)}


PROCESS = Family(None, "asyncio.subprocess.Process", KIND, _process_state)

# -- opening a connection, resolving a name: no object yet, folded into the op ----------------------


def _address_state(coro: Any) -> dict[str, StateValue]:
    local = coro.cr_frame.f_locals
    host, port = local.get("host"), local.get("port")
    return {"host": "" if host is None else str(host), "port": "" if port is None else str(port)}


def _op_coroutine(frame: FrameType, coro: Any) -> Any:
    return coro


def _address_op(source: str) -> OpSpec:
    family = Family(None, f"asyncio.{source}", KIND, _address_state, folds_into_op=True)
    return OpSpec(source, family, _goes_on, resource=_op_coroutine, closes_resource=True)


# -- aiohttp's own streams ------------------------------------------------------------------------


#: The reader of each read, by the read's coroutine: read again once the
#: coroutine has returned (and has no frame left to find it in).
_readers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _aiohttp_reader_state(coro: Any) -> dict[str, StateValue]:
    """The reader the op reads from (``self``): aiohttp's StreamReader has
    no weak references, so it is no resource of its own; each read carries
    it, with ``total_bytes``, everything received on it so far."""
    reader = _readers.get(coro)
    if reader is None:
        reader = _readers[coro] = coro.cr_frame.f_locals["self"]
    return {"buffered": int(reader._size), "eof": bool(reader._eof), "total_bytes": int(reader.total_bytes)}


def _queue_state(queue: Any) -> dict[str, StateValue]:
    return {"queued": len(queue._buffer), "eof": bool(queue._eof)}


def _install_aiohttp(streams: Any, waits: OperationWaits) -> None:
    """aiohttp's reads (a request's body on the server, a response's on the
    client) and its message queue (a client waiting for a response)."""
    reader = Family(
        None,
        "aiohttp.StreamReader",
        KIND,
        _aiohttp_reader_state,
        units={"buffered": "By", "total_bytes": "By"},
    )
    reader.folds_into_op = True
    for method in ("read", "readline", "readuntil", "readany", "readchunk", "readexactly"):
        function = getattr(streams.StreamReader, method, None)
        if function is not None:
            spec = OpSpec(
                f"StreamReader.{method}", reader, _goes_on, resource=_op_coroutine, closes_resource=True
            )
            waits.add(function, spec)
    queue = Family(None, "aiohttp.DataQueue", KIND, _queue_state)
    waits.add(streams.DataQueue.read, OpSpec("DataQueue.read", queue, ALWAYS))


# -- installation ---------------------------------------------------------------------------------


def install(waits: OperationWaits) -> None:
    reader, writer = asyncio.StreamReader, asyncio.StreamWriter
    for method in ("read", "readline", "readexactly", "readuntil"):
        waits.add(getattr(reader, method), OpSpec(f"StreamReader.{method}", READER, _goes_on))
    for method in ("drain", "wait_closed"):
        waits.add(getattr(writer, method), OpSpec(f"StreamWriter.{method}", WRITER, ALWAYS))
    loop = asyncio.selector_events.BaseSelectorEventLoop
    for method in _SOCKET_OPS:
        waits.add(getattr(loop, method), OpSpec(method, SOCKET, ALWAYS, resource=_socket_of))
    process = asyncio.subprocess.Process
    waits.add(process.wait, OpSpec("Process.wait", PROCESS, ALWAYS))
    waits.add(process.communicate, OpSpec("Process.communicate", PROCESS, _goes_on))
    waits.add(asyncio.open_connection, _address_op("open_connection"))
    waits.add(asyncio.BaseEventLoop.create_connection, _address_op("create_connection"))
    waits.add(asyncio.BaseEventLoop.getaddrinfo, _address_op("getaddrinfo"))
    waits.add_when_imported("aiohttp.streams", _install_aiohttp)
