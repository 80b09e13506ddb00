"""Resources: any object tasks wait on, with a state that is always the real one.

A ``Family`` describes one kind of resource: its Tokio-style type and kind, how
to read its real state, and which attribute writes change that state. The
registry keeps one ``ResourceState`` per live resource, updated in place. It
never keeps its own copy of a state machine: each observation *reads* the
object's real state and notes what changed since the last one (a
``state_update`` event for its span), so the replayed events equal
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
from collections.abc import Callable, Iterable, Mapping
from time import time_ns
from types import FrameType, MappingProxyType
from typing import TYPE_CHECKING, Any

from ..model import Entity, Event, Fate, Folded, Location, StateOp, StateValue, compacted, next_resource_id
from .frames import is_internal_file, is_runtime_file, location_of
from .patching import Patcher
from .task_state import MUTED, MUTED_CONTEXT, TaskState

if TYPE_CHECKING:
    from ..bridge.metrics import RuntimeMetrics
    from ..showing import Policy
    from .tasks import TaskTracker


#: How many distinct states a family shares between its resources at most.
_SHARED_STATES = 64


_NO_STATE: Mapping[str, StateValue] = MappingProxyType({})

#: One state update: attribute, value (or delta), ``StateOp``, unit.
Change = tuple[str, StateValue, str, str | None]


class Family:
    """One kind of resource (asyncio.Lock, asyncio.Queue, ...).

    A family with ``fields`` reads a state as a tuple of values in that
    order, and its resources share one dict per distinct state: ten thousand
    held Locks are in two or three states, not ten thousand (a dict of two
    items is 184 bytes, and a resource keeps its latest, its previous and its
    initial state). A shared state is never changed in place."""

    def __init__(
        self,
        cls: type | None,
        concrete_type: str,
        kind: str,
        read: Callable[[Any], dict[str, StateValue]] | Callable[[Any], tuple[StateValue, ...]],
        watched: Iterable[str] = (),
        deltas: Iterable[str] = (),
        units: dict[str, str] | None = None,
        on_write: Callable[[ResourceRegistry, ResourceState, Any, str, FrameType, TaskState | None], None]
        | None = None,
        on_wake: Callable[[ResourceRegistry, ResourceState, TaskState], None] | None = None,
        factories: Iterable[Any] = (),
        held_through: Callable[[Any], Any] | None = None,
        folds_into_op: bool = False,
        fields: tuple[str, ...] = (),
    ) -> None:
        self.cls = cls
        self.concrete_type = concrete_type
        self.kind = kind
        #: The object's real state (a shared dict when ``fields`` are given).
        self.read: Callable[[Any], dict[str, StateValue]]
        if fields:
            self._values: Callable[[Any], tuple[StateValue, ...]] = read  # type: ignore[assignment]
            self._fields = fields
            self._shared: dict[tuple[StateValue, ...], dict[str, StateValue]] = {}
            self.read = self._shared_read
        else:
            self.read = read  # type: ignore[assignment]
        #: The changes between two shared states, by their ids (a shared
        #: state lives as long as its family, so its id names it).
        self._shared_ids: set[int] = set()
        self._changes: dict[tuple[int, int], tuple[Change, ...]] = {}
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
        #: Used by exactly one op (a sleep's timer): the op's span says it all.
        self.folds_into_op = folds_into_op
        #: The name every resource of the family has (a custom resource's own
        #: family); None: named by the assignment that made it, if any.
        self.name: str | None = None

    def _shared_read(self, obj: Any) -> dict[str, StateValue]:
        values = self._values(obj)
        state = self._shared.get(values)
        if state is None:
            state = dict(zip(self._fields, values, strict=True))
            if len(self._shared) < _SHARED_STATES:
                self._shared[values] = state
                self._shared_ids.add(id(state))
        return state

    def changes(self, last: Mapping[str, StateValue], state: Mapping[str, StateValue]) -> tuple[Change, ...]:
        """What changed from ``last`` to ``state``, as Tokio's state updates:
        (attribute, value, ``StateOp``, unit), a delta where the attribute
        is one. Worked out once for each pair of shared states."""
        key = (id(last), id(state))
        found = self._changes.get(key)
        if found is None:
            found = self._diff(last, state)
            if key[0] in self._shared_ids and key[1] in self._shared_ids:
                self._changes[key] = found
        return found

    def _diff(self, last: Mapping[str, StateValue], state: Mapping[str, StateValue]) -> tuple[Change, ...]:
        found: list[Change] = []
        for name, value in state.items():
            old = last.get(name)
            if old == value:
                continue
            unit = self.units.get(name)
            if name in self.deltas and isinstance(old, int) and isinstance(value, int):
                delta = value - old
                found.append((name, abs(delta), StateOp.ADD if delta > 0 else StateOp.SUB, unit))
            else:
                found.append((name, value, StateOp.OVERRIDE, unit))
        return tuple(found)


class ResourceState(Entity):
    """What the instrumentation knows about one live resource."""

    __slots__ = (
        "adopted",
        "family",
        "handoffs",
        "held_through",
        "holders",
        "initial",
        "internal",
        "last",
        "location",
        "ops",
        "parent",
        "pending",
        "previous",
        "task",
        "wait_longest",
        "wait_total",
    )

    KIND = "resource"

    def __init__(self, rid: int, start: int, family: Family, internal: bool) -> None:
        super().__init__(rid, start)
        self.family = family
        self.internal = internal
        self.adopted = False
        #: The task that made it (or first used it), and the resource that
        #: owns it (a Condition's Lock), if any.
        self.task: TaskState | None = None
        self.parent: ResourceState | None = None
        self.location: Location | None = None
        #: The resource whose holders hold this one too (a Condition's Lock).
        self.held_through: ResourceState | None = None
        #: The state when it was made (its span opens with it), at the
        #: latest observation, and at the one before: never changed in
        #: place but by their owner (a family's states are shared).
        self.initial: Mapping[str, StateValue] = _NO_STATE
        self.last: dict[str, StateValue] = {}
        self.previous: dict[str, StateValue] = {}
        #: Tasks holding the resource (a Lock's owner, a Semaphore's permits):
        #: asyncio does not track them; diagnostics need them. A tuple, replaced
        #: whole (read from other threads; one holder costs 48 bytes, not a
        #: list's 88).
        self.holders: tuple[TaskState, ...] = ()
        #: Permits given up on behalf of waiters not yet woken.
        self.handoffs = 0
        #: Seen mid-construction: announced once the object is whole.
        self.pending = False
        #: Ops that waited on it, and how long they waited in all, at most.
        self.ops = 0
        self.wait_total = 0
        self.wait_longest = 0

    # -- as an entity ---------------------------------------------------------------------

    #: asyncio's own helpers are spans too (the ``internal`` option): set by
    #: the registry for the session's life.
    show_internal = False

    @property
    def folds_into_op(self) -> bool:
        """Used by one op only (a sleep's timer): never a span of its own."""
        return self.family.folds_into_op

    def owner(self) -> Entity | None:
        if self.parent is not None:
            return self.parent
        task = self.task
        while task is not None and (task.fate == Fate.FOLDED or task.internal):
            task = task.parent  # folded: what it was folded into stands for it
        return task

    def label(self) -> str:
        return self.family.concrete_type

    def pinnable(self) -> bool:
        return not self.family.folds_into_op and (not self.internal or self.show_internal)

    def fold_target(self) -> Folded | None:
        owner = self.owner()
        if owner is None or owner.ended or owner.KIND != "task":
            return None
        return owner.folded_here()  # type: ignore[attr-defined, no-any-return]

    def fold_into(self, folded: Folded) -> None:
        folded.add_resource(self.family.concrete_type)

    def op_ended(self, duration: int) -> None:
        self.wait_total += duration
        if duration > self.wait_longest:
            self.wait_longest = duration


class ResourceRegistry:
    """Live resources by object; creation, adoption, observation, end."""

    def __init__(self, tracker: TaskTracker, policy: Policy) -> None:
        self.tracker = tracker
        self.policy = policy
        self._states: dict[int, ResourceState] = {}
        self._refs: dict[int, weakref.ref[Any]] = {}
        #: Resources that are no primitive (one-shot futures, custom
        #: resources), by id: ended by their own code, or at exit.
        self._others: dict[int, ResourceState] = {}
        self._families: dict[type, Family] = {}
        self._by_type: dict[type, Family | None] = {}
        self.active = False
        #: Runtime metrics, when some consumer wants them.
        self.metrics: RuntimeMetrics | None = None

    def count_error(self, where: str, exc: BaseException) -> None:
        self.tracker.count_error(where, exc)

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

    def live(self) -> list[ResourceState]:
        """The live resources, oldest first (a copy)."""
        found = list(self._states.values())
        if self._others:
            found += self._others.values()
            found.sort(key=lambda rs: rs.id)
        return found

    def add_other(self, rs: ResourceState) -> None:
        """Follow a resource that is no primitive (a one-shot, a custom one)
        until it ends."""
        self._others[rs.id] = rs
        if self.metrics is not None:
            self.metrics.resource_created(rs.family.concrete_type)

    def ensure(
        self,
        obj: Any,
        family: Family | None = None,
        location: Location | None = None,
        adopted: bool = True,
        parent: ResourceState | None = None,
        task: TaskState | None = None,
    ) -> ResourceState | None:
        """The object's resource, registered now if it is new to us
        (``task``: the task it belongs to, by default the current one); None
        for an object of no known family, or made by a task not recorded."""
        rs = self._states.get(id(obj))
        if rs is not None:
            return rs
        family = family or self.family_of(obj)
        if family is None:
            return None
        return self._register(obj, family, location, adopted, parent, parent is not None, task)

    def _register(
        self,
        obj: Any,
        family: Family,
        location: Location | None,
        adopted: bool,
        parent: ResourceState | None,
        internal: bool = False,
        task: TaskState | None = None,
    ) -> ResourceState | None:
        if task is None:
            task = self.tracker.current()
            if task is MUTED:
                return None
        now = time_ns()
        rs = ResourceState(next_resource_id(), now, family, internal)
        rs.task = task
        rs.parent = parent
        rs.location = location
        rs.adopted = adopted
        key = id(obj)
        self._states[key] = rs
        ref = self._refs[rs.id] = _ResourceRef(obj, _resource_gone)
        ref.registry, ref.rs, ref.key = self, rs, key
        state = _safe_read(family, obj)
        if state is None:  # seen mid-construction: announced once it is whole
            rs.pending = True
        else:
            self._announce(rs, state, obj)
        return rs

    def _announce(self, rs: ResourceState, state: dict[str, StateValue], obj: Any) -> None:
        if self.metrics is not None:
            self.metrics.resource_created(rs.family.concrete_type)
        rs.initial = rs.last = state
        rs.pending = False
        through = rs.family.held_through
        if through is not None:  # a Condition's own Lock is its internal child, as in its ops
            inner = through(obj)
            rs.held_through = self.ensure(inner, parent=rs if owns(obj, inner) else None, task=rs.task)

    def created(self, obj: Any, family: Family, frame: FrameType | None) -> ResourceState | None:
        """Register an object seen during its own construction: find where in
        user code it was made, and whether another primitive made it for itself
        (a Condition's lock, a Queue's event), which makes it internal."""
        location, owner, owner_frame, internal = _construction_site(obj, frame, family.factories)
        parent = self._owner(owner, owner_frame) if owner is not None else None
        return self._register(obj, family, location, adopted=False, parent=parent, internal=internal)

    def adopt(self, obj: Any, family: Family, frame: FrameType) -> ResourceState | None:
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
        if rs is not None and self._refs.pop(rs.id, None) is not None:
            self.end(rs, time_ns())

    def _gone(self, rs: ResourceState, key: int) -> None:
        """The object was collected: perhaps on another thread (a garbage
        collection ran there), so the end is decided on the loop."""
        if self._states.get(key) is rs:
            del self._states[key]
        if self._refs.pop(rs.id, None) is not None:
            now = time_ns()
            self.tracker.ended_elsewhere.append(lambda: self.end(rs, now))

    def end(self, rs: ResourceState, now: int) -> None:
        """The resource is over: its span, or its fold (on the loop); once
        (ended at exit, its object's collection does not end it again)."""
        if rs.ended:
            return
        rs.ended = now
        self._others.pop(rs.id, None)
        if rs.pending or rs.family.folds_into_op:
            rs.fate = Fate.FOLDED
            rs.events = None
            return
        if rs.internal and not rs.show_internal and rs.fate != Fate.SHOWN:
            rs.fate = Fate.FOLDED  # its owner's span shows what matters
            rs.events = None
            return
        self.policy.ended(rs, rs.fate == Fate.SHOWN, self.policy.min_task_ns)

    # -- observation ---------------------------------------------------------------

    def observe(self, obj: Any, rs: ResourceState | None = None) -> ResourceState | None:
        """Note whatever changed in the object's real state."""
        rs = rs or self.ensure(obj)
        if rs is None:
            return rs
        family = rs.family
        state = _safe_read(family, obj)
        if state is None:
            return rs
        if rs.pending:
            self._announce(rs, state, obj)
            return rs
        last = rs.last
        if state is last or state == last:
            return rs
        rs.previous = last
        policy = self.policy
        if policy.keeps(rs):
            now = time_ns()
            for name, value, op, unit in family.changes(last, state):
                policy.event(rs, (Event.STATE, now, name, value, op, unit))
        else:  # a shown resource past the budget: counted, no event made
            rs.events_folded += sum(1 for name, value in state.items() if last.get(name) != value)
        rs.last = state
        return rs

    def touched(self, rs: ResourceState, obj: Any, name: str, frame: FrameType) -> None:
        """A watched attribute was written by the current task (or callback)."""
        st = self.tracker.current()
        if st is MUTED:
            st = None
        if rs.family.on_write is not None:
            rs.family.on_write(self, rs, obj, name, frame, st)
        resumed = st.resumed if st is not None else None
        if resumed is not None and any(ref() is obj for ref in resumed.objects):
            resumed.touched_at = time_ns()

    def hold(self, rs: ResourceState, st: TaskState) -> None:
        """``st`` took the resource (a Lock, one of a Semaphore's permits)."""
        rs.holders = (*rs.holders, st)

    def let_go(self, rs: ResourceState, st: TaskState) -> None:
        """``st`` gave the resource (or one permit) back."""
        holders = rs.holders
        if st in holders:
            i = holders.index(st)
            rs.holders = holders[:i] + holders[i + 1 :]

    def compact(self, now: int) -> None:
        """Give back the room of resources that are gone (a sweeper)."""
        self._states, self._refs = compacted(self._states), compacted(self._refs)

    def live_count(self) -> int:
        return len(self._states) + len(self._others)


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
        ref.registry.count_error("resource gone", exc)


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
    family_lookup = registry.family_of  # never rebound
    muted = MUTED_CONTEXT.get

    def __setattr__(self: Any, name: str, value: Any) -> None:
        base(self, name, value)
        if name not in watched or not registry.active:
            return
        rs = registry._states.get(id(self))  # rebound by compact()
        if rs is None and muted():  # a sampled-out program's: nothing to look at
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
                if rs is None:
                    return
            registry.observe(self, rs)
            registry.touched(rs, self, name, sys._getframe(1))
        except Exception as exc:
            registry.count_error(f"{family.concrete_type} state", exc)

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


__all__ = ["Family", "ResourceRegistry", "ResourceState", "hook_setattr"]
