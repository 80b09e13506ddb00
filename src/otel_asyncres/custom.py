"""Resources of your own: a connection pool, a rate limiter, a circuit breaker.

A library author declares the resource, performs async operations on it and
updates its state; it then shows up exactly like asyncio's primitives: a
``resource <type>`` span with ``state_update`` events and final state, and an
``async_op <source>`` span per operation, under the task that performed it.

    pool = otel_asyncres.Resource("mylib.ConnectionPool", kind="Sync", state={"idle": 10, "in_use": 0})

    async def acquire():
        async with pool.operation("ConnectionPool.acquire"):
            conn = await idle_connections.get()
        pool.sub(idle=1)
        pool.add(in_use=1)
        return conn

Without instrumentation every call is a cheap no-op, so a library can do this
unconditionally. A resource made before ``instrument()`` is announced at its
first use after it, with its state as it is then.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from time import time_ns
from types import TracebackType
from typing import Any

from .instrumentation.frames import user_location
from .instrumentation.tasks import TaskState
from .instrumentation.waits import OpRecords, ScopeHandler, Wait
from .records import (
    Outcome,
    ResourceClosed,
    ResourceCreated,
    ResourceStateUpdated,
    StateOp,
    StateValue,
    next_resource_id,
)
from .session import Session, current_session

__all__ = ["Operation", "Resource"]


class Resource:
    """A resource whose state the program maintains itself."""

    def __init__(
        self,
        concrete_type: str,
        kind: str = "Sync",
        state: Mapping[str, StateValue] | None = None,
        *,
        units: Mapping[str, str] | None = None,
        parent: Resource | None = None,
    ) -> None:
        self.concrete_type = concrete_type
        self.kind = kind
        self.units = dict(units or {})
        self.parent = parent
        self._state: dict[str, StateValue] = dict(state or {})
        self._location = user_location()
        #: The session the resource was announced to, and its id there.
        self._session: Session | None = None
        self._id = 0
        self._closed = False
        self._finalizer: Any = None  # weakref.finalize
        self._announce()

    @property
    def state(self) -> dict[str, StateValue]:
        """The state as last set (a copy)."""
        return dict(self._state)

    # -- state -------------------------------------------------------------------

    def update(self, **state: StateValue) -> None:
        """Set attributes to new values (Tokio's ``override``)."""
        for name, value in state.items():
            self._state[name] = value
            self._record(name, value, StateOp.OVERRIDE)

    def add(self, **deltas: int | float) -> None:
        """Increase numeric attributes (Tokio's ``add``)."""
        self._change(deltas, 1, StateOp.ADD)

    def sub(self, **deltas: int | float) -> None:
        """Decrease numeric attributes (Tokio's ``sub``)."""
        self._change(deltas, -1, StateOp.SUB)

    def _change(self, deltas: Mapping[str, int | float], sign: int, op: str) -> None:
        for name, delta in deltas.items():
            current = self._state.get(name, 0)
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise TypeError(f"{self.concrete_type}.{name} is not a number: {current!r}")
            self._state[name] = current + sign * delta
            self._record(name, delta, op)

    # -- operations ----------------------------------------------------------------

    def operation(self, source: str) -> Operation:
        """An async op on this resource, as a context manager (``async with``
        or ``with``) around what the task does, waits included."""
        return Operation(self, source)

    def close(self) -> None:
        """The resource is gone (also done when it is garbage-collected)."""
        if self._closed:
            return
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()  # records the end, once

    # -- plumbing ------------------------------------------------------------------

    def _live_session(self) -> Session | None:
        """The current session, announcing the resource to it if needed."""
        session = current_session()
        if session is None or self._closed:
            return None
        if session is not self._session:
            self._announce()
        return session if session is self._session else None

    def _announce(self) -> None:
        session = current_session()
        if session is None:
            return
        parent_id = None
        if self.parent is not None and self.parent._live_session() is session:
            parent_id = self.parent._id
        current = session.instrumentation.tasks.current()
        if current is not None and current.muted:
            return  # made by a task that is not recorded
        self._session, self._id = session, next_resource_id()
        session.recorder.emit(
            ResourceCreated(
                time_ns(),
                self._id,
                self.concrete_type,
                self.kind,
                current.id if current is not None else None,
                self._location,
                dict(self._state),
                parent_resource_id=parent_id,
                units=dict(self.units),
            )
        )
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _closed, session, self._id)

    def _record(self, name: str, value: StateValue, op: str) -> None:
        session = self._live_session()
        if session is not None:
            event = ResourceStateUpdated(time_ns(), self._id, name, value, op, self.units.get(name))
            session.recorder.emit(event)


def _closed(session: Session, rid: int) -> None:
    """The end of a resource, on ``close()`` or collection (it holds the id,
    never the resource, or the resource could never be collected)."""
    session.recorder.emit(ResourceClosed(time_ns(), rid))


class Operation:
    """One async op on a custom resource, as a context manager."""

    def __init__(self, resource: Resource, source: str) -> None:
        self.resource = resource
        self.source = source
        self._wait: Wait | None = None
        self._ops: OpRecords | None = None
        self._task: TaskState | None = None
        self._location = user_location()

    def update(self, **state: StateValue) -> None:
        """Set the op's own state (``runtime::resource::async_op::state_update``)."""
        if self._wait is not None and self._ops is not None:
            for name, value in state.items():
                self._ops.state(self._wait, name, value)

    def __enter__(self) -> Operation:
        self._open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(kind)

    async def __aenter__(self) -> Operation:
        self._open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(kind)

    def _open(self) -> None:
        session = self.resource._live_session()
        if session is None:
            return
        st = session.instrumentation.tasks.current()  # None outside any task
        if st is not None and st.muted:
            return  # a task that is not recorded: nor are its ops
        self._ops = session.instrumentation.ops
        self._wait = self._ops.open(st, None, self.resource._id, self.source, self._location, ScopeHandler())
        if st is not None:
            self._task = st
            st.scopes = (*st.scopes, self._wait)

    def _close(self, kind: type[BaseException] | None) -> None:
        if self._wait is None or self._ops is None:
            return
        if kind is None:
            outcome = Outcome.OK
        elif kind.__name__ == "CancelledError":
            outcome = Outcome.CANCELLED
        else:
            outcome = Outcome.ERROR
        wait, self._wait = self._wait, None
        if self._task is not None:
            self._task.scopes = tuple(w for w in self._task.scopes if w is not wait)
        self._ops.completed(wait, time_ns(), outcome, waker_id=wait.waker_id)
