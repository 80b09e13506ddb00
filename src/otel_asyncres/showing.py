"""Which entities become spans: decided on the loop, within a budget.

Every task, resource and wait is shown, as Tokio Console shows them, for as
long as the span data exported per second stays under a budget (spans plus
span events). Past it, the duration an entity needs to be shown rises with the
load, so the shortest are folded first: counted, with aggregate statistics, on
the entity above them, and nothing else kept.

The decision is taken when an entity ends, when its whole story is known, so a
failure, a diagnostic or a long wait is always shown. A few entities are
shown before they end: the ancestors of a shown entity (a span needs its
parent), a task or resource that a shown event names (so that every id in a
trace resolves to a span of it, or says it was folded), and whatever has lived
long enough to be worth showing while it lives (a server's accept loop must
reach a backend long before it ends).

All of it runs on the loop: one thread decides, so nothing needs a lock. What
is shown is queued for the bridge (``handoff``), by reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import time_ns
from typing import Any

from .handoff import Handoff
from .model import Entity, Event, Fate, Folded

#: How often the budget is refilled (ns).
PERIOD_NS = 10_000_000

#: Entities still alive are shown once they have lived this long: a
#: long-lived entity must reach a backend while it lives.
LIVE_SHOWN_AFTER_NS = 1_000_000_000

#: A shown entity keeps at most this many windows' worth of events that the
#: bridge has not taken yet (a burst between two of its visits).
SHOWN_ROOM = 16

#: Durations between these powers of two of nanoseconds (1 µs and 1 s) are
#: placed on the budget's scale; shorter ones count as the shortest, longer
#: ones as the longest.
_SHORTEST_BIT = 10
_LONGEST_BIT = 30


class Budget:
    """Span data per second: a token bucket, and the duration an entity
    needs to spend from it.

    The bucket holds ``burst`` units and refills at ``rate`` units a second;
    a span costs one unit and each of its events one more. How full the
    bucket must be for an entity to be shown depends on how long the entity
    lasted, on a logarithmic scale: the shortest (a microsecond) only while
    it is full, the longest (a second or more) while anything is left. A
    program that stays under the budget keeps its bucket full and shows
    everything; under load the bucket drains, and the duration needed rises
    with it, so the shortest are folded first, at once, and as soon as the
    load falls the bucket fills again. Events of shown spans need the bucket
    half full: spans of long waits outrank the detail of busy ones."""

    __slots__ = ("burst", "rate", "refilled_at", "tokens", "unlimited")

    def __init__(self, rate: float, burst: float | None = None, now: int = 0) -> None:
        #: Units (spans and span events) per second; 0: no limit at all.
        self.rate = rate
        self.unlimited = rate <= 0
        self.burst = burst if burst is not None else rate
        self.tokens = self.burst
        self.refilled_at = now

    def needs(self, duration: int) -> float:
        """How full the bucket must be to show an entity that lasted ``duration``."""
        bit = duration.bit_length()
        if bit <= _SHORTEST_BIT:
            return self.burst
        if bit >= _LONGEST_BIT:
            return 0.0
        return self.burst * (_LONGEST_BIT - bit) / (_LONGEST_BIT - _SHORTEST_BIT)

    def fits(self, duration: int, cost: int, now: int) -> bool:
        """Whether an entity that lasted ``duration`` may be shown at ``cost``
        units. Nothing is spent here: showing spends, for every span it makes
        (``Policy.show``)."""
        if self.unlimited:
            return True
        if now - self.refilled_at >= PERIOD_NS:
            self.refill(now)
        tokens = self.tokens
        return tokens >= cost and tokens >= self.needs(duration)

    def spend(self, cost: int) -> None:
        """Units spent whatever the budget (a failure, a diagnostic)."""
        self.tokens -= cost

    def take_event(self) -> bool:
        """One event for a span that is already shown, if the bucket is at
        least half full."""
        if self.unlimited:
            return True
        if self.tokens * 2 >= self.burst:
            self.tokens -= 1
            return True
        return False

    def refill(self, now: int) -> None:
        elapsed = now - self.refilled_at
        self.refilled_at = now
        self.tokens = min(self.burst, self.tokens + self.rate * elapsed / 1e9)


class Policy:
    """Decides, on the loop, what becomes a span and what is folded; hands
    what is shown to the bridge through ``handoff`` (when it is full, an
    entity about to be shown stays undecided, and is folded when it ends)."""

    def __init__(
        self,
        handoff: Handoff,
        budget: Budget,
        window_events: int,
        everything: bool = False,
        min_task_ns: int = 0,
        min_wait_ns: int = 0,
    ) -> None:
        self._handoff = handoff
        self.budget = budget
        #: Events an entity keeps before it is shown (and, once shown, between
        #: two visits of the bridge); past that they are counted.
        self.room = window_events
        #: detail=all: every entity is shown, whatever the budget.
        self.everything = everything
        self.min_task_ns = min_task_ns
        self.min_wait_ns = min_wait_ns
        #: What was folded where no entity could carry it: roots of traces,
        #: and entities whose parent had ended.
        self.orphans = Folded()
        #: Entities shown and folded, by kind (for the exit summary).
        self.shown_count: dict[str, int] = {}
        self.folded_count: dict[str, int] = {}

    # -- events -----------------------------------------------------------------------

    def event(self, entity: Entity, event: tuple[Any, ...]) -> None:
        """Keep an event for the entity's span, if there is room for it.

        An undecided entity keeps a window's worth; one that fills it is busy
        enough to be shown now, if the budget has room for it. A shown one
        keeps what the bridge has not taken yet, up to ``SHOWN_ROOM``
        windows' worth, and each event spends a unit of the budget."""
        events = entity.events
        if events is None:
            events = entity.events = []
        if entity.fate != Fate.SHOWN:
            if len(events) < self.room:
                events.append(event)
                return
            now = time_ns()
            if not (
                self._handoff.has_room()
                and self.budget.fits(now - entity.start, 1 + len(events), now)
                and self.show(entity)
            ):
                entity.events_folded += 1
                return
        if len(events) >= self.room * SHOWN_ROOM or not self.budget.take_event():
            entity.events_folded += 1
            return
        events.append(event)
        self._pin_references(event)
        self.notify(entity)
        if len(events) == self.room:
            self._handoff.hurry()

    def keeps(self, entity: Entity) -> bool:
        """Whether ``event`` would keep an event for the entity now: a
        caller that pays to make events asks first. False only for a shown
        entity whose events the budget refuses (the hot case: a long-lived
        Queue or Lock under contention); an undecided one may still be
        shown by its next event."""
        if entity.fate != Fate.SHOWN:
            return True
        budget = self.budget
        return budget.unlimited or budget.tokens * 2 >= budget.burst

    def must_keep(self, entity: Entity, event: tuple[Any, ...]) -> None:
        """An event that is always kept (a diagnostic, an exception), and
        makes its entity worth a span."""
        events = entity.events
        if events is None:
            events = entity.events = []
        events.append(event)
        if entity.fate == Fate.SHOWN:
            self._pin_references(event)
            self.notify(entity)

    # -- decisions ----------------------------------------------------------------------

    def ended(self, entity: Entity, must: bool, floor: int) -> None:
        """``entity`` has ended (``ended`` set): show it or fold it.
        ``must``: shown whatever the budget; ``floor``: the least duration it
        needs otherwise."""
        if entity.fate == Fate.UNDECIDED:
            cost = 1 + len(entity.events or ())
            if not (must or self.everything or self._worth_it(entity, floor, cost)):
                self.fold(entity)
                return
            if not self.show(entity):
                # Worth a span, but the hand-off is full: the one place a
                # drop is counted, once per entity.
                self._handoff.count_drop(entity.KIND)
                self.fold(entity)
                return
        if entity.fate == Fate.SHOWN:
            self.notify(entity)

    def _worth_it(self, entity: Entity, floor: int, cost: int) -> bool:
        duration = entity.duration()
        return duration >= floor and self.budget.fits(duration, cost, entity.ended)

    def fold(self, entity: Entity) -> None:
        """Count the entity on its owner (or the orphans); nothing else is kept."""
        entity.fate = Fate.FOLDED
        entity.events = None
        kind = entity.KIND
        self.folded_count[kind] = self.folded_count.get(kind, 0) + 1
        entity.fold_into(entity.fold_target() or self.orphans)

    def show(self, entity: Entity) -> bool:
        """Make the entity a span, its ancestors first, with the tasks and
        resources its events name and the entities it links to. False when
        the hand-off has no room (then it stays undecided).

        A loop, not a recursion: a chain of 3,000 tasks each awaiting the
        next is shown from its deepest task. Every fate is decided before
        the first is handed over, so the bridge never sees a shown entity
        whose references are still undecided."""
        if entity.fate == Fate.SHOWN:
            return True
        if not self._handoff.has_room():
            return False
        shown: list[Entity] = []
        todo = [entity]
        while todo:
            chain = _unshown_chain(todo.pop())
            for each in reversed(chain):  # the outermost owner first
                if each.fate != Fate.SHOWN:
                    self._mark_shown(each, todo)
                    shown.append(each)
        for each in shown:
            self.notify(each)
        return True

    def _mark_shown(self, entity: Entity, todo: list[Entity]) -> None:
        entity.fate = Fate.SHOWN
        # Every span shown is paid for, with the events it holds: the one
        # asked for, and the owners, links and references shown with it.
        self.budget.spend(1 + len(entity.events or ()))
        kind = entity.KIND
        self.shown_count[kind] = self.shown_count.get(kind, 0) + 1
        for event in entity.events or ():
            todo.extend(_pinned(event))
        todo.extend(other for other in entity.linked() if other.fate == Fate.UNDECIDED)

    def _pin_references(self, event: tuple[Any, ...]) -> None:
        """Tasks and resources a shown event names are shown too (ops it
        names are resolved when exported: named if shown, marked if folded)."""
        for other in _pinned(event):
            self.show(other)

    def notify(self, entity: Entity) -> None:
        """Something the bridge must see changed on a shown entity."""
        if not entity.queued:
            entity.queued = True
            self._handoff.queue(entity)

    def summary(self) -> str | None:
        """One line for the exit summary when anything was folded: how much
        was shown and folded, and what was folded with no span left to count
        it on (into a task that had ended, or a root)."""
        if not self.folded_count:
            return None
        line = (
            f"otel-asyncres: past the budget, {_kinds(self.folded_count)} were folded into the span "
            f"above them ({_kinds(self.shown_count) or 'nothing'} shown)"
        )
        orphans = self.orphans
        unplaced = orphans.tasks + sum(w[0] for w in orphans.waits.values()) + sum(orphans.resources.values())
        if unplaced:
            line += f"; {unplaced} had no span left to be counted on"
        return line

    # -- long-lived entities ---------------------------------------------------------

    def show_long_lived(self, entities: Iterable[Entity], now: int) -> None:
        """Show the live entities that have lived long enough (each
        iterable oldest first: the walk stops at the first young one)."""
        for entity in entities:
            age = now - entity.start
            if age < LIVE_SHOWN_AFTER_NS:
                break
            if entity.fate == Fate.UNDECIDED and not entity.ended:
                # Through the budget like every other span: a slow loop with
                # thousands of live tasks would otherwise show them all. One
                # refused now is asked again on the next sweep, or at its end.
                if not (
                    self._handoff.has_room() and self.budget.fits(age, 1 + len(entity.events or ()), now)
                ):
                    return
                self.show(entity)


def _unshown_chain(entity: Entity) -> list[Entity]:
    """The entity and its owners up to the first that is shown."""
    chain = []
    current: Entity | None = entity
    while current is not None and current.fate != Fate.SHOWN:
        chain.append(current)
        current = current.owner()
    return chain


def _pinned(event: tuple[Any, ...]) -> list[Entity]:
    """The tasks and resources an event names that must be shown with it."""
    return [
        other
        for index in Event.REFERENCES.get(event[0], ())
        if (other := event[index]) is not None and other.fate == Fate.UNDECIDED and other.pinnable()
    ]


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(counts.items()))
