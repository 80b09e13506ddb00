"""Resources of your own: a connection pool, a rate limiter, a circuit breaker.

A library author declares the resource, performs async operations on it and
updates its state; it then shows up exactly like asyncio's primitives: a
``resource <type>`` span with ``state_update`` events and final state, and an
``async_op <source>`` span per operation, under the task that performed it.

    pool = otel_asyncres.Resource(
        "mylib.ConnectionPool", kind="Sync", state={"idle": 10, "in_use": 0}, name="db-pool"
    )

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
from .instrumentation.resources import Family, ResourceState
from .instrumentation.task_state import MUTED, TaskState
from .instrumentation.waits import Ops, ScopeHandler, Wait
from .model import Event, Outcome, StateOp, StateValue, next_resource_id
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
        name: str | None = None,
    ) -> None:
        """``name`` tells it apart from others of its type
        (``asyncio.resource.name``); without one, the name it is assigned to
        where it is made (``self.pool = Resource(...)``: ``pool``) is used."""
        self.concrete_type = concrete_type
        self.name = name
        self.kind = kind
        self.units = dict(units or {})
        self.parent = parent
        self._state: dict[str, StateValue] = dict(state or {})
        self._location = user_location()
        self._family = Family(None, concrete_type, kind, lambda obj: {}, units=self.units)
        self._family.name = name
        #: The session the resource was announced to, and its state there.
        self._session: Session | None = None
        self._rs: ResourceState | None = None
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
        live = self._live()  # first: announced with the state before the change
        for name, value in state.items():
            self._state[name] = value
            self._record(live, name, value, StateOp.OVERRIDE)

    def add(self, **deltas: int | float) -> None:
        """Increase numeric attributes (Tokio's ``add``)."""
        self._change(deltas, 1, StateOp.ADD)

    def sub(self, **deltas: int | float) -> None:
        """Decrease numeric attributes (Tokio's ``sub``)."""
        self._change(deltas, -1, StateOp.SUB)

    def _change(self, deltas: Mapping[str, int | float], sign: int, op: str) -> None:
        live = self._live()  # first: announced with the state before the change
        for name, delta in deltas.items():
            current = self._state.get(name, 0)
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise TypeError(f"{self.concrete_type}.{name} is not a number: {current!r}")
            self._state[name] = current + sign * delta
            self._record(live, name, delta, op)

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
            self._finalizer()  # ends it, once

    # -- plumbing ------------------------------------------------------------------

    def _live(self) -> tuple[Session, ResourceState] | None:
        """The current session and the resource's state there, announcing
        the resource to it if needed."""
        session = current_session()
        if session is None or self._closed:
            return None
        if session is not self._session:
            self._announce()
        rs = self._rs
        return (session, rs) if session is self._session and rs is not None else None

    def _announce(self) -> None:
        session = current_session()
        if session is None:
            return
        current = session.instrumentation.tasks.current()
        if current is MUTED:
            return  # made by a task that is not recorded
        parent = self.parent._live() if self.parent is not None else None
        rs = ResourceState(next_resource_id(), time_ns(), self._family, False)
        rs.task = current
        rs.parent = parent[1] if parent is not None and parent[0] is session else None
        rs.location = self._location
        rs.initial = rs.last = dict(self._state)
        self._session, self._rs = session, rs
        session.instrumentation.resources.add_other(rs)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _closed, session, rs)

    def _record(
        self, live: tuple[Session, ResourceState] | None, name: str, value: StateValue, op: str
    ) -> None:
        if live is not None:
            session, rs = live
            rs.last = dict(self._state)
            event = (Event.STATE, time_ns(), name, value, op, self.units.get(name))
            session.policy.event(rs, event)


def _closed(session: Session, rs: ResourceState) -> None:
    """The end of a resource, on ``close()`` or collection (perhaps on another
    thread: decided on the loop, or at the session's end)."""
    now = time_ns()
    resources = session.instrumentation.resources
    session.instrumentation.tasks.ended_elsewhere.append(lambda: resources.end(rs, now))


class Operation:
    """One async op on a custom resource, as a context manager."""

    def __init__(self, resource: Resource, source: str) -> None:
        self.resource = resource
        self.source = source
        self._wait: Wait | None = None
        self._ops: Ops | None = None
        self._task: TaskState | None = None
        self._location = user_location()

    def update(self, **state: StateValue) -> None:
        """Set the op's own state (``runtime::resource::async_op::state_update``)."""
        if self._wait is not None and self._ops is not None:
            for name, value in state.items():
                self._ops.state(self._wait, name, value, time_ns())

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
        live = self.resource._live()
        if live is None:
            return
        session, rs = live
        st = session.instrumentation.tasks.current()  # None outside any task
        if st is MUTED:
            return  # a task that is not recorded: nor are its ops
        self._ops = session.instrumentation.ops
        self._wait = self._ops.open(st, None, rs, self.source, self._location, ScopeHandler(), time_ns())
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
        self._ops.completed(wait, time_ns(), outcome, waker=wait.waker)
