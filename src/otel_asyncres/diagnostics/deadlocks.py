"""Deadlock detection on the wait-for graph that the records describe.

A parked task waits through its open async ops; each op's resource has
owners, the tasks that must act before the wait can end: a Lock's holder, the
holders of a Semaphore's permits, the holder of a Condition's lock (notifying
takes it), the task a join awaits. Resources with no known owners (an Event,
a Queue, a future, a timer, a timeout) could be completed by anyone, so a task
waiting on one is never counted as deadlocked.

A task is deadlocked when every op it waits in has owners and every owner is
deadlocked too (one releasing owner would let it go on: a Semaphore's waiter
needs only one permit, and a task waiting in several ops at once, as
``asyncio.wait`` does, needs only one of them). That is a greatest fixed
point, computed over the blocked tasks reachable from the task that just
parked: a deadlock can only form when a task parks, so that is when it is
looked for. The cycle at its heart is reported once; it is reported again only
if it dissolves (a timeout, a cancellation) and forms anew.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..records import Location


@dataclass(frozen=True)
class DeadlockedTask:
    """One task of a deadlock cycle: where it waits and for whom."""

    task_id: int
    name: str
    #: The op it waits in (``Lock.acquire``), on which resource.
    source: str
    resource_type: str
    resource_id: int
    #: The ``await`` in user code, when known.
    location: Location | None
    #: The next task in the cycle: the owner it waits for.
    waits_for: int

    def describe(self) -> str:
        where = f" at {self.location}" if self.location is not None else ""
        return (
            f"task {self.name} #{self.task_id} waits in {self.source} on "
            f"{self.resource_type} #{self.resource_id}{where}, held by task #{self.waits_for}"
        )


@dataclass(frozen=True)
class Deadlock:
    """A cycle of tasks, each waiting for the next (given to ``on_deadlock``)."""

    tasks: tuple[DeadlockedTask, ...]

    def describe(self) -> str:
        return " -> ".join(t.describe() for t in self.tasks)


class _Resource:
    __slots__ = ("held_through", "holders", "id", "type")

    def __init__(self, rid: int, concrete_type: str, held_through: int | None) -> None:
        self.id = rid
        self.type = concrete_type
        self.held_through = held_through
        #: Made at the first holder: most resources are never held.
        self.holders: Counter[int] | None = None


#: An open op: (task id, resource id, source).
_Op = tuple[int, int, str]

_JOIN_TYPE = "asyncio.Task"


class WaitGraph:
    """Who waits for whom, kept up to date from the records.

    Programs keep thousands of tasks, joins and ops alive at once: what is
    kept of each is ints and strings in tuples and dicts, which the cyclic
    garbage collector does not need to walk (as it would objects)."""

    def __init__(self, name_of: Callable[[int], str]) -> None:
        #: A task's name, as whoever keeps the tasks knows it (the analyzer).
        self._name_of = name_of
        #: Resources that can be held (Locks, Semaphores, Conditions).
        self._resources: dict[int, _Resource] = {}
        #: The resource a task is to those who join it: its task id.
        self._joined: dict[int, int] = {}
        self._ops: dict[int, _Op] = {}
        self._locations: dict[int, Location] = {}
        self._task_ops: dict[int, tuple[int, ...]] = {}
        self._parked: set[int] = set()
        #: The cycles reported and still standing, by the tasks in them.
        self._reported: dict[frozenset[int], Deadlock] = {}

    # -- keeping up with the records -------------------------------------------------

    def task_closed(self, task_id: int) -> None:
        self.unparked(task_id)
        for op_id in self._task_ops.pop(task_id, ()):
            self._ops.pop(op_id, None)
            self._locations.pop(op_id, None)

    def resource_created(
        self, rid: int, concrete_type: str, task_id: int | None, held_through: int | None
    ) -> None:
        """``task_id``: for a joined task, the task itself, its one owner."""
        if concrete_type == _JOIN_TYPE and task_id is not None:
            self._joined[rid] = task_id
        else:
            self._resources[rid] = _Resource(rid, concrete_type, held_through)

    def resource_closed(self, rid: int) -> None:
        self._resources.pop(rid, None)
        self._joined.pop(rid, None)

    def held(self, rid: int, task_id: int) -> None:
        res = self._resources.get(rid)
        if res is not None:
            if res.holders is None:
                res.holders = Counter()
            res.holders[task_id] += 1

    def released(self, rid: int, task_id: int) -> None:
        res = self._resources.get(rid)
        if res is not None and res.holders is not None and res.holders[task_id] > 0:
            res.holders[task_id] -= 1
            if not res.holders[task_id]:
                del res.holders[task_id]

    def op_created(self, op_id: int, task_id: int, rid: int, source: str, location: Location | None) -> None:
        self._ops[op_id] = (task_id, rid, source)
        if location is not None:
            self._locations[op_id] = location
        self._task_ops[task_id] = (*self._task_ops.get(task_id, ()), op_id)

    def op_closed(self, op_id: int) -> None:
        op = self._ops.pop(op_id, None)
        self._locations.pop(op_id, None)
        if op is not None:
            task_id = op[0]
            left = tuple(o for o in self._task_ops.get(task_id, ()) if o != op_id)
            if left:
                self._task_ops[task_id] = left
            else:
                self._task_ops.pop(task_id, None)

    def unparked(self, task_id: int) -> None:
        """Woken or running: not waiting for anyone; a cycle it was in is over."""
        self._parked.discard(task_id)
        for key in [k for k in self._reported if task_id in k]:
            del self._reported[key]

    def parked(self, task_id: int) -> Deadlock | None:
        """The task parked: the deadlock this closes, if any, not reported before."""
        self._parked.add(task_id)
        deadlocked = self._deadlocked_from(task_id)
        if task_id not in deadlocked:
            return None
        cycle = self._cycle(task_id, deadlocked)
        key = frozenset(t.task_id for t in cycle.tasks)
        if key in self._reported:
            return None
        self._reported[key] = cycle
        return cycle

    # -- the analysis ---------------------------------------------------------------------

    def _owners(self, rid: int) -> set[int]:
        joined = self._joined.get(rid)
        if joined is not None:
            return {joined}
        res = self._resources.get(rid)
        if res is None:
            return set()
        if res.held_through is not None:
            res = self._resources.get(res.held_through) or res
        return set(res.holders or ())

    def _waits(self, task_id: int) -> list[tuple[int, set[int]]]:
        """The task's open ops, each with the owners it waits for."""
        return [(op_id, self._owners(self._ops[op_id][1])) for op_id in self._task_ops.get(task_id, ())]

    def _deadlocked_from(self, start: int) -> set[int]:
        """The greatest set of blocked tasks, reachable from ``start``, each
        of whose waits is on owners that are all in the set."""
        waits: dict[int, list[tuple[int, set[int]]]] = {}
        pending = [start]
        while pending:
            task_id = pending.pop()
            if task_id in waits or task_id not in self._parked:
                continue
            waits[task_id] = self._waits(task_id)
            pending.extend(owner for _, owners in waits[task_id] for owner in owners)
        alive = set(waits)
        changed = True
        while changed:
            changed = False
            for task_id in list(alive):
                task_waits = waits[task_id]
                if not task_waits or any(not owners or not owners <= alive for _, owners in task_waits):
                    alive.discard(task_id)
                    changed = True
        return alive

    def _cycle(self, start: int, deadlocked: set[int]) -> Deadlock:
        """Follow the owners, from ``start``, until a task comes round again."""
        path: list[DeadlockedTask] = []
        seen: dict[int, int] = {}
        task_id = start
        while task_id not in seen:
            seen[task_id] = len(path)
            op_id, owners = min(self._waits(task_id))
            _, rid, source = self._ops[op_id]
            res = self._resources.get(rid)
            concrete_type = res.type if res is not None else _JOIN_TYPE
            owner = min(owners & deadlocked)
            name = self._name_of(task_id)
            location = self._locations.get(op_id)
            path.append(DeadlockedTask(task_id, name, source, concrete_type, rid, location, owner))
            task_id = owner
        return Deadlock(tuple(path[seen[task_id] :]))
