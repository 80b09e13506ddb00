"""Streams, sockets, subprocesses and DNS, described as resources.

Tokio's instrumentation has no I/O resources, so the convention is ours
(docs/mapping.md, *I/O resources*). The ops are recognised the way every
other op is (``operations``): from the frames a task is parked in, so nothing
is wrapped and a read that finds its data buffered costs nothing. What an op
moved is read from the call itself:

- the loop's ``sock_*`` methods complete a future with what they return (the
  data received, the byte count, the accepted socket), read when the task
  resumes on it; what ``sock_sendall`` sends is its argument;
- a ``StreamReader`` read returns what it takes from the reader's buffer,
  and every such take ends with ``_maybe_resume_transport()``: a hook there,
  on readers that are resources already, reads the taken bytes from its
  caller's frame and ends the op at that moment (a second, on ``feed_eof``,
  notes the end of the stream);
- a connection, a ``getaddrinfo`` and a subprocess's ``communicate`` carry the
  address, the host and port, or the sizes of the outputs.

States are read from the objects (buffered bytes and EOF, a socket's file
descriptor and addresses, a process's pid and return code) when an op on
them begins waiting and when it ends, and a reader's at its EOF; they are not
followed in between (a byte count per ``data_received`` would cost more than
it shows).
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import asyncio.subprocess
import contextlib
import sys
import weakref
from time import time_ns
from types import FrameType
from typing import Any

from ..model import Outcome, StateValue
from .operations import ALWAYS, OperationWaits, OpSpec
from .patching import Patcher
from .resources import Family, ResourceRegistry
from .task_state import MUTED
from .tasks import TaskTracker
from .waits import Ops, Wait

#: Tokio's ``kind`` for what waits on the world outside the program.
IO = "IO"
PROCESS = "Process"

READ = "StreamReader.read"


def _never(obj: Any, future: Any) -> bool:
    """The op goes on after a resume (a read waits for more data, a
    connection resolves then connects): it ends when its task leaves it."""
    return False


def _address(value: Any) -> str | None:
    """``host:port`` for an IP address tuple, the path of a Unix socket."""
    if isinstance(value, tuple) and len(value) >= 2:
        host, port = value[0], value[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value if isinstance(value, str) and value else None


def _peer_of(transport: Any) -> str | None:
    if transport is None:
        return None
    try:
        return _address(transport.get_extra_info("peername"))
    except Exception:  # a transport of someone else's making
        return None


def _put(state: dict[str, StateValue], name: str, value: StateValue | None) -> None:
    if value is not None:
        state[name] = value


# -- StreamReader, StreamWriter ---------------------------------------------------------------------


def _reader_state(reader: Any) -> dict[str, StateValue]:
    state: dict[str, StateValue] = {"buffered": len(reader._buffer), "eof": bool(reader._eof)}
    _put(state, "peer", _peer_of(reader._transport))
    return state


def _writer_state(writer: Any) -> dict[str, StateValue]:
    transport = writer._transport
    state: dict[str, StateValue] = {
        "write_buffer": int(transport.get_write_buffer_size()),
        "closing": bool(transport.is_closing()),
    }
    _put(state, "peer", _peer_of(transport))
    return state


READER = Family(asyncio.StreamReader, "asyncio.StreamReader", IO, _reader_state, units={"buffered": "By"})
WRITER = Family(asyncio.StreamWriter, "asyncio.StreamWriter", IO, _writer_state, units={"write_buffer": "By"})


def _drain_opened(wait: Wait, frame: FrameType, coro: Any) -> None:
    """What the drain waits to see written: the transport's buffer as it
    began waiting (it ends once the buffer is below its low-water mark)."""
    writer = frame.f_locals.get("self")
    transport = getattr(writer, "_transport", None)
    if transport is not None:
        _set(wait, "write_buffer", int(transport.get_write_buffer_size()))


def _set(wait: Wait, name: str, value: StateValue) -> None:
    """The op's own state, exported as ``asyncio.async_op.state.<name>``:
    a plain value, not an event per change."""
    if wait.state is None:
        wait.state = {}
    wait.state[name] = value


class ReaderTakes:
    """The bytes a ``StreamReader`` op returned, seen where asyncio takes them
    from the buffer (``_maybe_resume_transport``, called right after)."""

    def __init__(self, registry: ResourceRegistry, tracker: TaskTracker, ops: Ops) -> None:
        self.registry = registry
        self.tracker = tracker
        self.ops = ops

    def install(self, patcher: Patcher) -> None:
        original = getattr(asyncio.StreamReader, "_maybe_resume_transport")  # noqa: B009 (private, untyped)
        registry, takes = self.registry, self
        known = registry.get

        def _maybe_resume_transport(self: Any) -> None:
            # asyncio's version only resumes a paused transport; if that
            # raises, it is raised as before (with this frame in its traceback).
            original(self)
            if registry.active and known(self) is not None:  # one lookup: readers that waited
                try:
                    takes.taken(self, sys._getframe(1))
                except Exception as exc:
                    registry.count_error("StreamReader read", exc)

        patcher.replace(asyncio.StreamReader, "_maybe_resume_transport", _maybe_resume_transport)
        original_eof = asyncio.StreamReader.feed_eof

        def feed_eof(self: Any) -> None:
            # The end of the stream is the one change worth a state update
            # between ops (a read that finds it needs no wait, so no op).
            original_eof(self)
            rs = known(self) if registry.active else None
            if rs is not None:
                try:
                    registry.observe(self, rs)
                except Exception as exc:
                    registry.count_error("StreamReader eof", exc)

        patcher.replace(asyncio.StreamReader, "feed_eof", feed_eof)

    def taken(self, reader: Any, caller: FrameType) -> None:
        """``caller`` took bytes from ``reader``'s buffer: if that is the op its
        task resumed in, they are the op's; a read that returns them ends
        its op here (a ``read()`` to EOF goes on: its inner reads take)."""
        st = self.tracker.current()
        if st is None or st is MUTED:
            return
        wait = st.resumed
        if wait is None or wait.completed or not wait.id or not wait.objects:
            return
        if wait.objects[0]() is not reader:
            return
        now = time_ns()
        wait.touched_at = now
        local = caller.f_locals
        data = local.get("data")
        if data is None:
            data = local.get("chunk")
        if not isinstance(data, (bytes, bytearray)):
            return  # a read giving up on a too long line: it raises
        _set(wait, "bytes", int((wait.state or {}).get("bytes", 0)) + len(data))
        if wait.source != READ or _is_frame_of(wait.key, caller):
            self.ops.completed(wait, now, wait.outcome or Outcome.OK)


def _is_frame_of(key: Any, frame: FrameType) -> bool:
    """Whether ``frame`` is the op's own (``key``: a weak reference to its
    coroutine): a ``read()`` to EOF ends when its outer call returns."""
    coro = key() if key is not None else None
    return coro is not None and coro.cr_frame is frame


# -- sockets ---------------------------------------------------------------------------------------


def _socket_state(sock: Any) -> dict[str, StateValue]:
    state: dict[str, StateValue] = {"fd": int(sock.fileno())}
    for name, read in (("local", sock.getsockname), ("peer", sock.getpeername)):
        with contextlib.suppress(OSError):  # not bound, not connected, closed
            _put(state, name, _address(read()))
    return state


SOCKET = Family(None, "socket.socket", IO, _socket_state)


def _arguments(frame: FrameType | None, coro: Any) -> Any:
    """The call's arguments, from its frame (asyncio's own methods: uvloop's
    are Cython, awaited through a wrapper that hides them, so never seen)."""
    return frame.f_locals if frame is not None else {}


def _sock_argument(frame: FrameType, coro: Any) -> Any:
    return _arguments(frame, coro).get("sock")


def _received(wait: Wait, future: Any) -> None:
    data = future._result
    if isinstance(data, (bytes, bytearray)):
        _set(wait, "bytes", len(data))


def _received_into(wait: Wait, future: Any) -> None:
    if isinstance(future._result, int):
        _set(wait, "bytes", future._result)


def _accepted(wait: Wait, future: Any) -> None:
    result = future._result
    if isinstance(result, tuple) and len(result) == 2:
        _put_op(wait, "peer", _address(result[1]))


def _sending(wait: Wait, frame: FrameType, coro: Any) -> None:
    data = _arguments(frame, coro).get("data")
    with contextlib.suppress(TypeError):  # no buffer: sock_sendall raises
        _set(wait, "bytes", memoryview(data).nbytes)


def _connecting(wait: Wait, frame: FrameType, coro: Any) -> None:
    _put_op(wait, "peer", _address(_arguments(frame, coro).get("address")))


def _put_op(wait: Wait, name: str, value: StateValue | None) -> None:
    if value is not None:
        _set(wait, name, value)


# -- connections and DNS: made for one op, which carries them (as a sleep its timer) --------------


def _op_coroutine(frame: FrameType, coro: Any) -> Any:
    return coro


def _call_state(coro: Any) -> dict[str, StateValue]:
    """The host and port (or path) the call was given, read from its frame
    (none once it has returned: AttributeError, the state stays as read)."""
    local = coro.cr_frame.f_locals
    state: dict[str, StateValue] = {}
    host, port, path = local.get("host"), local.get("port"), local.get("path")
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if isinstance(host, str):
        state["host"] = host
    if isinstance(port, int):
        state["port"] = port
    elif isinstance(port, (str, bytes)):
        state["port"] = port.decode(errors="replace") if isinstance(port, bytes) else port
    if isinstance(path, (str, bytes)):
        state["path"] = _address(path) or ""
    return state


CONNECTION = Family(None, "asyncio.Connection", IO, _call_state, folds_into_op=True)
DNS = Family(None, "asyncio.getaddrinfo", IO, _call_state, folds_into_op=True)

# -- subprocesses ----------------------------------------------------------------------------------


def _process_state(process: Any) -> dict[str, StateValue]:
    state: dict[str, StateValue] = {"pid": int(process.pid)}
    _put(state, "returncode", process.returncode)
    return state


PROCESS_FAMILY = Family(asyncio.subprocess.Process, "asyncio.subprocess.Process", PROCESS, _process_state)


def _communicated(wait: Wait, future: Any) -> None:
    """``communicate`` gathers (stdin, stdout, stderr): the outputs' sizes."""
    result = future._result
    if isinstance(result, list) and len(result) == 3:
        for name, data in (("stdout", result[1]), ("stderr", result[2])):
            if isinstance(data, (bytes, bytearray)):
                _set(wait, f"{name}_bytes", len(data))


# -- installation ----------------------------------------------------------------------------------


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
        IO,
        _aiohttp_reader_state,
        units={"buffered": "By", "total_bytes": "By"},
    )
    reader.folds_into_op = True
    for method in ("read", "readline", "readuntil", "readany", "readchunk", "readexactly"):
        function = getattr(streams.StreamReader, method, None)
        if function is not None:
            spec = OpSpec(
                f"StreamReader.{method}", reader, _never, resource=_op_coroutine, closes_resource=True
            )
            waits.add(function, spec)
    queue = Family(None, "aiohttp.DataQueue", IO, _queue_state)
    waits.add(streams.DataQueue.read, OpSpec("DataQueue.read", queue, ALWAYS))


def install(
    registry: ResourceRegistry, waits: OperationWaits, ops: Ops, tracker: TaskTracker, patcher: Patcher
) -> None:
    for family in (READER, WRITER, PROCESS_FAMILY):
        registry.add_family(family)
    reader = asyncio.StreamReader
    for name in ("read", "readline", "readexactly", "readuntil"):
        waits.add(getattr(reader, name), OpSpec(f"StreamReader.{name}", READER, _never))
    waits.add(asyncio.StreamWriter.drain, OpSpec("StreamWriter.drain", WRITER, ALWAYS, on_open=_drain_opened))
    waits.add(asyncio.StreamWriter.wait_closed, OpSpec("StreamWriter.wait_closed", WRITER, ALWAYS))
    ReaderTakes(registry, tracker, ops).install(patcher)

    selector = asyncio.selector_events.BaseSelectorEventLoop
    sockets: dict[str, dict[str, Any]] = {
        "sock_recv": {"on_resume": _received},
        "sock_recv_into": {"on_resume": _received_into},
        "sock_sendall": {"on_open": _sending},
        "sock_accept": {"on_resume": _accepted},
        "sock_connect": {"on_open": _connecting},
    }
    for name, hooks in sockets.items():
        waits.add(getattr(selector, name), OpSpec(name, SOCKET, ALWAYS, resource=_sock_argument, **hooks))

    connecting = [asyncio.open_connection, asyncio.BaseEventLoop.create_connection]
    unix = getattr(asyncio, "unix_events", None)
    if unix is not None and hasattr(asyncio, "open_unix_connection"):
        connecting += [asyncio.open_unix_connection, unix._UnixSelectorEventLoop.create_unix_connection]
    for function in connecting:
        spec = OpSpec(function.__name__, CONNECTION, _never, resource=_op_coroutine, closes_resource=True)
        waits.add(function, spec)
    dns = OpSpec("getaddrinfo", DNS, ALWAYS, resource=_op_coroutine, closes_resource=True)
    waits.add(asyncio.BaseEventLoop.getaddrinfo, dns)

    process = asyncio.subprocess.Process
    waits.add(process.wait, OpSpec("Process.wait", PROCESS_FAMILY, ALWAYS))
    communicate = OpSpec("Process.communicate", PROCESS_FAMILY, _never, on_resume=_communicated)
    waits.add(process.communicate, communicate)
    waits.add_when_imported("aiohttp.streams", _install_aiohttp)


__all__ = ["CONNECTION", "DNS", "PROCESS_FAMILY", "READER", "SOCKET", "WRITER", "install"]
