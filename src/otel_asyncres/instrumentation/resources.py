"""Resources: any object tasks wait on, with a state that is always the real one.

A ``Family`` describes one kind of resource: its Tokio-style type and kind, how
to read its real state, and which attribute writes change that state. The
registry turns observations into records. It never keeps its own copy of a
state machine: each observation *reads* the object's real state and records
what changed since the last one, so the replayed ``state_update`` events equal
the object's state at every observation, on every code path, whatever the
Python version's implementation does in between.

asyncio's primitives are pure Python: their methods mutate a few attributes
(``self._locked = True``). A class-level ``__setattr__`` sees exactly those
writes, at the moment they happen, without wrapping any coroutine (no extra
frame in anyone's traceback, no cost on reads). Resources are tied to their
objects by weak references: a resource ends when its object is collected.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Iterable
from time import time_ns
from types import FrameType
from typing import Any

from ..recorder import Recorder
from ..records import (
    Location,
    ResourceClosed,
    ResourceCreated,
    ResourceHeld,
    ResourceReleased,
    ResourceStateUpdated,
    StateOp,
    StateValue,
    next_resource_id,
)
from .frames import is_internal_file, is_runtime_file, location_of
from .patching import Patcher
from .tasks import TaskState, TaskTracker


class Family:
    """One kind of resource (asyncio.Lock, asyncio.Queue, ...)."""

    def __init__(
        self,
        cls: type | None,
        concrete_type: str,
        kind: str,
        read: Callable[[Any], dict[str, StateValue]],
        watched: Iterable[str] = (),
        deltas: Iterable[str] = (),
        units: dict[str, str] | None = None,
        on_write: Callable[[ResourceRegistry, ResourceState, Any, str, FrameType, TaskState | None], None]
        | None = None,
        on_wake: Callable[[ResourceRegistry, ResourceState, TaskState], None] | None = None,
        factories: Iterable[Any] = (),
        held_through: Callable[[Any], Any] | None = None,
    ) -> None:
        self.cls = cls
        self.concrete_type = concrete_type
        self.kind = kind
        self.read = read
        #: Attribute writes that change the state.
        self.watched = frozenset(watched)
        #: Numeric state recorded as Tokio's add/sub deltas rather than overrides.
        self.deltas = frozenset(deltas)
        self.units = units or {}
        #: Called after a watched attribute was written (owner tracking).
        self.on_write = on_write
        #: Called when a task parked on the resource is woken.
        self.on_wake = on_wake
        #: asyncio functions through which user code makes these objects
        #: (``asyncio.timeout``): construction through them is the user's.
        self.factories = frozenset(f.__code__ for f in factories if f is not None)
        #: The object whose holders hold this one (a Condition's Lock).
        self.held_through = held_through


class ResourceState:
    """What the instrumentation knows about one live resource."""

    __slots__ = ("family", "handoffs", "holders", "id", "internal", "last", "muted", "pending", "previous")

    def __init__(self, rid: int, family: Family, internal: bool) -> None:
        self.id = rid
        self.family = family
        #: The state at the latest observation, and at the one before.
        self.last: dict[str, StateValue] = {}
        self.previous: dict[str, StateValue] = {}
        self.internal = internal
        #: Tasks holding the resource (a Lock's owner, a Semaphore's permits):
        #: asyncio does not track them; diagnostics need them. A list from the
        #: first holder on (most resources, a joined task, never have one).
        self.holders: list[int] | tuple[()] = ()
        #: Permits given up on behalf of waiters not yet woken.
        self.handoffs = 0
        #: The creation record, held back while the object is half-built.
        self.pending: ResourceCreated | None = None
        #: Made by a task that is not recorded: not recorded either.
        self.muted = False


class ResourceRegistry:
    """Live resources by object; creation, adoption, observation, end."""

    def __init__(self, recorder: Recorder, tracker: TaskTracker) -> None:
        self.recorder = recorder
        self._emit = recorder.emit
        self.tracker = tracker
        self._states: dict[int, ResourceState] = {}
        self._refs: dict[int, weakref.ref[Any]] = {}
        self._families: dict[type, Family] = {}
        self._by_type: dict[type, Family | None] = {}
        self.active = False

    # -- families and hooks ---------------------------------------------------

    def add_family(self, family: Family) -> None:
        if family.cls is not None:
            self._families[family.cls] = family
            self._by_type.clear()

    def family_of(self, obj: Any) -> Family | None:
        """The family of the nearest registered class (cached per type, so a
        user subclass of Lock is a Lock)."""
        cls = type(obj)
        try:
            return self._by_type[cls]
        except KeyError:
            found = next((self._families[c] for c in cls.__mro__ if c in self._families), None)
            self._by_type[cls] = found
            return found

    def hook_class(self, cls: type, patcher: Patcher) -> None:
        """Observe writes to watched attributes of ``cls`` and its subclasses."""
        watched = frozenset().union(*(f.watched for c, f in self._families.items() if issubclass(c, cls)))
        hook_setattr(cls, self, patcher, watched)

    # -- lookup, creation ----------------------------------------------------------

    def get(self, obj: Any) -> ResourceState | None:
        return self._states.get(id(obj))

    def ensure(
        self,
        obj: Any,
        family: Family | None = None,
        location: Location | None = None,
        adopted: bool = True,
        parent: ResourceState | None = None,
        task_id: int | None = None,
    ) -> ResourceState | None:
        """The object's resource, registered now if it is new to us
        (``task_id``: the task it belongs to, by default the current one)."""
        rs = self._states.get(id(obj))
        if rs is not None:
            return rs
        family = family or self.family_of(obj)
        if family is None:
            return None
        return self._register(obj, family, location, adopted, parent, parent is not None, task_id)

    def _register(
        self,
        obj: Any,
        family: Family,
        location: Location | None,
        adopted: bool,
        parent: ResourceState | None,
        internal: bool = False,
        task_id: int | None = None,
    ) -> ResourceState:
        rs = ResourceState(next_resource_id(), family, internal=internal)
        key = id(obj)
        self._states[key] = rs
        ref = self._refs[rs.id] = _ResourceRef(obj, _resource_gone)
        ref.registry, ref.rs, ref.key = self, rs, key
        if task_id is None:
            current = self.tracker.current()
            if current is not None and current.muted:
                rs.muted = True
                return rs
            task_id = current.id if current is not None else None
        state = _safe_read(family, obj)
        record = ResourceCreated(
            time_ns(),
            rs.id,
            family.concrete_type,
            family.kind,
            task_id,
            location,
            {},
            parent_resource_id=parent.id if parent is not None else None,
            is_internal=internal,
            adopted=adopted,
            units=family.units,
        )
        if state is None:  # seen mid-construction: created once it is whole
            rs.pending = record
        else:
            self._announce(rs, record, state, obj)
        return rs

    def _announce(
        self, rs: ResourceState, record: ResourceCreated, state: dict[str, StateValue], obj: Any
    ) -> None:
        record.state = dict(state)
        rs.last = state
        rs.pending = None
        through = rs.family.held_through
        if through is not None:  # a Condition's own Lock is its internal child, as in its ops
            inner = through(obj)
            other = self.ensure(inner, parent=rs if owns(obj, inner) else None)
            record.held_through = other.id if other is not None else None
        self._emit(record)

    def created(self, obj: Any, family: Family, frame: FrameType | None) -> ResourceState:
        """Register an object seen during its own construction: find where in
        user code it was made, and whether another primitive made it for itself
        (a Condition's lock, a Queue's event), which makes it internal."""
        location, owner, owner_frame, internal = _construction_site(obj, frame, family.factories)
        parent = self._owner(owner, owner_frame) if owner is not None else None
        return self._register(obj, family, location, adopted=False, parent=parent, internal=internal)

    def adopt(self, obj: Any, family: Family, frame: FrameType) -> ResourceState:
        """Register an object made before ``instrument()``, seen now as asyncio
        writes one of its attributes: where user code is using it, and whether
        a primitive that owns it is the one using it (a Condition's Lock)."""
        owner = _owning_primitive(obj, frame, self.family_of)
        parent = self.ensure(owner) if owner is not None else None
        location = None if parent is not None else _first_user_location(frame)
        return self._register(obj, family, location, True, parent, internal=parent is not None)

    def _owner(self, owner: Any, frame: FrameType | None) -> ResourceState | None:
        """The primitive that made another for itself; if it is still being
        built (a Condition making its Lock), registered as made right there."""
        rs = self._states.get(id(owner))
        if rs is not None:
            return rs
        family = self.family_of(owner)
        if family is None:
            return None
        if frame is not None and frame.f_code.co_name == "__init__":
            return self.created(owner, family, frame)
        return self.ensure(owner, family)

    def close(self, obj: Any) -> None:
        """End a resource before its object dies (a sleep that is over)."""
        rs = self._states.pop(id(obj), None)
        if rs is not None and self._refs.pop(rs.id, None) is not None and rs.pending is None and not rs.muted:
            self._emit(ResourceClosed(time_ns(), rs.id))

    def _gone(self, rs: ResourceState, key: int) -> None:
        if self._states.get(key) is rs:
            del self._states[key]
        if self._refs.pop(rs.id, None) is not None and rs.pending is None and not rs.muted:
            self._emit(ResourceClosed(time_ns(), rs.id))

    # -- observation ---------------------------------------------------------------

    def observe(self, obj: Any, rs: ResourceState | None = None) -> ResourceState | None:
        """Record whatever changed in the object's real state."""
        rs = rs or self.ensure(obj)
        if rs is None or rs.muted:
            return rs
        family = rs.family
        state = _safe_read(family, obj)
        if state is None:
            return rs
        if rs.pending is not None:
            self._announce(rs, rs.pending, state, obj)
            return rs
        last = rs.last
        if state == last:
            return rs
        now = time_ns()
        rid = rs.id
        rs.previous = last
        for name, value in state.items():
            old = last.get(name)
            if old == value:
                continue
            unit = family.units.get(name)
            if name in family.deltas and isinstance(old, int) and isinstance(value, int):
                delta = value - old
                op = StateOp.ADD if delta > 0 else StateOp.SUB
                self._emit(ResourceStateUpdated(now, rid, name, abs(delta), op, unit))
            else:
                self._emit(ResourceStateUpdated(now, rid, name, value, StateOp.OVERRIDE, unit))
        rs.last = state
        return rs

    def touched(self, rs: ResourceState, obj: Any, name: str, frame: FrameType) -> None:
        """A watched attribute was written by the current task (or callback)."""
        if rs.muted:
            return
        st = self.tracker.current()
        if rs.family.on_write is not None:
            rs.family.on_write(self, rs, obj, name, frame, st)
        resumed = st.resumed if st is not None else None
        if resumed is not None and any(ref() is obj for ref in resumed.objects):
            resumed.touched_at = time_ns()

    def hold(self, rs: ResourceState, task_id: int) -> None:
        """``task_id`` took the resource (a Lock, one of a Semaphore's permits)."""
        if not isinstance(rs.holders, list):
            rs.holders = []
        rs.holders.append(task_id)
        if not rs.muted and rs.pending is None:
            self._emit(ResourceHeld(time_ns(), rs.id, task_id))

    def let_go(self, rs: ResourceState, task_id: int) -> None:
        """``task_id`` gave the resource (or one permit) back."""
        if isinstance(rs.holders, list):
            rs.holders.remove(task_id)
        if not rs.muted and rs.pending is None:
            self._emit(ResourceReleased(time_ns(), rs.id, task_id))

    def live(self) -> int:
        return len(self._states)


class _ResourceRef(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a resource's object that knows its resource: one
    object per resource rather than a reference and a callback object."""

    __slots__ = ("key", "registry", "rs")
    key: int
    registry: ResourceRegistry
    rs: ResourceState


def _resource_gone(ref: _ResourceRef) -> None:
    """Weak-reference callback: the resource's object was collected."""
    try:
        ref.registry._gone(ref.rs, ref.key)
    except Exception as exc:
        ref.registry.recorder.count_error("resource gone", exc)


def _safe_read(family: Family, obj: Any) -> dict[str, StateValue] | None:
    """The state, or None while the object is still being built."""
    try:
        return family.read(obj)
    except AttributeError:
        return None


def _construction_site(
    obj: Any, frame: FrameType | None, factories: frozenset[Any] = frozenset()
) -> tuple[Location | None, Any, FrameType | None, bool]:
    """Walk out of the object's own ``__init__`` frames (and the public
    factories that make it). The first frame in user code is where it was
    made. If asyncio's own code made it first (a Condition's Lock, a Queue's
    Event, ``as_completed``'s Queue), it is internal, a child of the primitive
    that made it (``self`` there, with that frame), if any."""
    while frame is not None:
        code = frame.f_code
        if code in factories or (code.co_name == "__init__" and frame.f_locals.get("self") is obj):
            frame = frame.f_back
            continue
        filename = code.co_filename
        if is_runtime_file(filename):
            owner = frame.f_locals.get("self")
            if owner is obj:
                owner = None
            return None, owner, frame if owner is not None else None, True
        if not is_internal_file(filename):
            return location_of(frame), None, None, False
        frame = frame.f_back
    return None, None, None, False


def owns(owner: Any, obj: Any) -> bool:
    """Whether ``obj`` is one of ``owner``'s own attributes."""
    return any(value is obj for value in getattr(owner, "__dict__", {}).values())


def _owning_primitive(obj: Any, frame: FrameType | None, family_of: Callable[[Any], Any]) -> Any:
    """Among the asyncio frames using ``obj``, a primitive it belongs to."""
    while frame is not None and is_runtime_file(frame.f_code.co_filename):
        owner = frame.f_locals.get("self")
        if owner is not None and owner is not obj and family_of(owner) is not None and owns(owner, obj):
            return owner
        frame = frame.f_back
    return None


def _first_user_location(frame: FrameType | None) -> Location | None:
    while frame is not None:
        if not is_internal_file(frame.f_code.co_filename):
            return location_of(frame)
        frame = frame.f_back
    return None


def hook_setattr(cls: type, registry: ResourceRegistry, patcher: Patcher, watched: frozenset[str]) -> None:
    """Observe writes to watched attributes on ``cls`` and its subclasses.
    Reads are untouched; the write itself happens first and as before, so
    nothing can fail differently."""
    base: Callable[[Any, str, Any], None] = cls.__setattr__  # type: ignore[assignment]
    family_lookup, known = registry.family_of, registry.get

    def __setattr__(self: Any, name: str, value: Any) -> None:
        base(self, name, value)
        if name not in watched or not registry.active:
            return
        rs = known(self)
        if rs is not None and rs.muted:  # a sampled-out program's: nothing to look at
            return
        family = family_lookup(self)
        if family is None or name not in family.watched:
            return
        try:
            if rs is None:
                caller = sys._getframe(1)
                if _constructing(self):
                    rs = registry.created(self, family, caller)
                else:
                    rs = registry.adopt(self, family, caller)
            registry.observe(self, rs)
            registry.touched(rs, self, name, sys._getframe(1))
        except Exception as exc:
            registry.recorder.count_error(f"{family.concrete_type} state", exc)

    patcher.replace(cls, "__setattr__", __setattr__)


def _constructing(obj: Any) -> bool:
    """Whether ``obj.__init__`` is running right now (two frames up: the hook,
    then the method that wrote the attribute)."""
    frame = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            return False
        if frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is obj:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


__all__ = ["Family", "ResourceRegistry", "ResourceState", "TaskState", "hook_setattr"]
