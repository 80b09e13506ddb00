"""Deadlock detection on the wait-for graph, read where it lives: on the loop.

A parked task waits through its async op; the op's resource has owners, the
tasks that must act before the wait can end: a Lock's holder, the holders of a
Semaphore's permits, the holder of a Condition's lock (notifying takes it),
the task a join awaits. Resources with no known owners (an Event, a Queue, a
future, a timer, a timeout) could be completed by anyone, so a task waiting on
one is never counted as deadlocked.

A task is deadlocked when every op it waits in has owners and every owner is
deadlocked too (one releasing owner would let it go on: a Semaphore's waiter
needs only one permit; a task waiting for several tasks at once, as
``gather`` does, is let go only when each of them is). That is a greatest
fixed point, computed over the blocked tasks reachable from the task that just
parked: a deadlock can only form when a task parks, so that is when it is
looked for. Nothing is kept to do it: holders are on the resources, waits on
the tasks. The cycle at its heart is reported once; it is reported again only
if it dissolves (one of its tasks is woken) and forms anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model import Location

if TYPE_CHECKING:
    from ..instrumentation.task_state import TaskState
    from ..instrumentation.waits import Wait


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


#: One op a task waits in: (the op's source, its resource's type and id, the
#: ``await``, the tasks that own what it waits for).
_Edge = tuple[str, str, int, "Location | None", "set[TaskState]"]


def blocked(st: TaskState) -> bool:
    """Parked and not woken since: it cannot run until someone acts."""
    return st.wait is not None and st.woken_at is None and not st.ended


def _edges(st: TaskState) -> list[_Edge]:
    """The ops a parked task waits in, each with its owners (an empty set:
    anyone could complete it): its park, and the scopes it is inside of (a
    timeout ends a wait by itself: a task inside one is never deadlocked)."""
    wait = st.wait
    assert wait is not None
    scopes: list[_Edge] = [
        (scope.source, scope.concrete_type, 0, scope.location, set()) for scope in st.scopes
    ]
    return scopes + _park_edges(wait)


def _park_edges(wait: Wait) -> list[_Edge]:
    children = getattr(wait.handler, "children", None)
    if children is not None:  # gather, wait: one join per task still running
        return [
            ("Task.__await__", "asyncio.Task", child.id, wait.location, {child})
            for child in children
            if not child.ended
        ]
    if wait.awaited is not None:
        awaited = wait.awaited
        return [
            (wait.source, "asyncio.Task", awaited.id, wait.location, set() if awaited.ended else {awaited})
        ]
    resource = wait.resource
    if resource is None:
        return [(wait.source, wait.concrete_type, 0, wait.location, set())]
    held = resource.held_through or resource
    owners = {holder for holder in held.holders if not holder.ended}
    return [(wait.source, resource.family.concrete_type, resource.id, wait.location, owners)]


class DeadlockDetector:
    """Looks for the cycle a parking task closes."""

    def __init__(self) -> None:
        #: The cycles reported and still standing, by the ids of their tasks.
        self._reported: dict[frozenset[int], Deadlock] = {}

    def woken(self, st: TaskState) -> None:
        """A task runs again: a cycle it was in is over."""
        if self._reported:
            for key in [k for k in self._reported if st.id in k]:
                del self._reported[key]

    def parked(self, st: TaskState) -> Deadlock | None:
        """The task parked: the deadlock this closes, if any, not reported before."""
        waits = self._deadlocked_from(st)
        if st not in waits:
            return None
        cycle = self._cycle(st, waits)
        key = frozenset(t.task_id for t in cycle.tasks)
        if key in self._reported:
            return None
        self._reported[key] = cycle
        return cycle

    @staticmethod
    def _deadlocked_from(start: TaskState) -> dict[TaskState, list[_Edge]]:
        """The greatest set of blocked tasks, reachable from ``start``, each
        of whose ops is on owners that are all in the set, with their ops."""
        if not blocked(start):
            return {}
        edges = _edges(start)
        for edge in edges:  # most parks: on a task that runs, or a resource nobody holds
            if not edge[4] or not all(blocked(owner) for owner in edge[4]):
                return {}
        waits: dict[TaskState, list[_Edge]] = {start: edges}
        pending = [owner for edge in edges for owner in edge[4]]
        while pending:
            st = pending.pop()
            if st in waits or not blocked(st):
                continue
            edges = waits[st] = _edges(st)
            pending.extend(owner for edge in edges for owner in edge[4])
        alive = set(waits)
        changed = True
        while changed:
            changed = False
            for st in list(alive):
                edges = waits[st]
                if not edges or any(not edge[4] or not edge[4] <= alive for edge in edges):
                    alive.discard(st)
                    changed = True
        return {st: waits[st] for st in alive}

    @staticmethod
    def _cycle(start: TaskState, waits: dict[TaskState, list[_Edge]]) -> Deadlock:
        """Follow the owners, from ``start``, until a task comes round again."""
        path: list[DeadlockedTask] = []
        seen: dict[int, int] = {}
        st = start
        while st.id not in seen:
            seen[st.id] = len(path)
            source, resource_type, resource_id, location, owners = min(waits[st], key=lambda e: e[2])
            owner = min((o for o in owners if o in waits), key=lambda o: o.id)
            name = st.name or st.coroutine
            path.append(DeadlockedTask(st.id, name, source, resource_type, resource_id, location, owner.id))
            st = owner
        return Deadlock(tuple(path[seen[st.id] :]))
