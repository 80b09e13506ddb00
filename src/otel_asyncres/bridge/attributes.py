"""What an entity's span carries: attributes and events, from the entity.

The bridge reads each shown entity where it lives (``model``) and turns it
into OpenTelemetry's vocabulary here: identity attributes at the span's start,
statistics and state when a window or the span ends, and each kept event.
Names are a contract (``semconv``, docs/mapping.md).
"""

from __future__ import annotations

import linecache
import re
from typing import TYPE_CHECKING, Any

from ..model import Entity, ErrorInfo, Event, Fate, Folded, Location, StateOp, StateValue
from . import semconv as sc

if TYPE_CHECKING:
    from ..instrumentation.resources import ResourceState
    from ..instrumentation.task_state import TaskState
    from ..instrumentation.waits import Wait


def code_attributes(location: Location | None) -> dict[str, Any]:
    if location is None:
        return {}
    return {
        sc.CODE_FILE_PATH: location.file,
        sc.CODE_LINE_NUMBER: location.line,
        sc.CODE_FUNCTION_NAME: location.function,
    }


def seconds(ns: int) -> float:
    return max(ns, 0) / 1e9


# -- identity --------------------------------------------------------------------------------


def task_identity(st: TaskState) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        sc.TASK_ID: st.id,
        sc.TASK_KIND: st.kind,
        sc.TASK_COROUTINE: st.coroutine,
        **code_attributes(st.location),
    }
    if st.name is not None:
        attributes[sc.TASK_NAME] = st.name
    parent = st.parent
    if parent is not None:
        attributes[sc.TASK_PARENT_ID] = parent.id
    if st.adopted:
        attributes[sc.TASK_ADOPTED] = True
    return attributes


def resource_identity(rs: ResourceState) -> dict[str, Any]:
    family = rs.family
    attributes: dict[str, Any] = {
        sc.RESOURCE_ID: rs.id,
        sc.RESOURCE_CONCRETE_TYPE: family.concrete_type,
        sc.RESOURCE_KIND: family.kind,
        sc.RESOURCE_IS_INTERNAL: rs.internal,
        **code_attributes(rs.location),
    }
    name = family.name or assigned_name(rs.location)
    if name is not None:
        attributes[sc.RESOURCE_NAME] = name
    attributes.update((f"{sc.RESOURCE_STATE_PREFIX}{k}.unit", unit) for k, unit in family.units.items())
    if rs.adopted:
        attributes[sc.RESOURCE_ADOPTED] = True
    if rs.parent is not None:
        attributes[sc.RESOURCE_PARENT_ID] = rs.parent.id
    if rs.task is not None:
        attributes[sc.TASK_ID] = rs.task.id
    return attributes


#: ``pool = asyncio.Semaphore(2)``, ``self.pool = ...``, ``jobs: asyncio.Queue[int] = ...``:
#: one name assigned the value of a call (not ``a, b = ...``, not a comparison).
_ASSIGNED = re.compile(r"^\s*(?:self\.|cls\.)?([A-Za-z_]\w*)\s*(?::[^=]+)?=(?!=)\s*[\w.]+\s*[\[(]")

_names: dict[Location, str | None] = {}


def assigned_name(location: Location | None) -> str | None:
    """The name the program gives a resource: the target of the assignment on
    the line that made it, when the line shows one. Read from the source on
    the bridge's thread (cached per line), never on the loop."""
    if location is None:
        return None
    try:
        return _names[location]
    except KeyError:
        pass
    found = _ASSIGNED.match(linecache.getline(location.file, location.line))
    name = _names[location] = found[1] if found else None
    if len(_names) > 4096:
        _names.clear()
    return name


def op_identity(op: Wait) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        sc.ASYNC_OP_ID: op.id,
        sc.ASYNC_OP_SOURCE: op.source,
        **code_attributes(op.location),
    }
    resource = op.resource
    if resource is not None:
        attributes[sc.RESOURCE_ID] = resource.id
        if resource.family.folds_into_op:  # a sleep's timer: the op carries it
            attributes.update(folded_resource(resource))
    if op.task is not None:
        attributes[sc.TASK_ID] = op.task.id
    if op.awaited is not None:
        attributes.update(task_reference(op.awaited, sc.AWAITED_TASK_ID, sc.AWAITED_TASK_NAME, None))
    if op.holders:
        attributes[sc.HELD_BY_IDS] = [st.id for st in op.holders]
        attributes[sc.HELD_BY_NAMES] = [st.label() for st in op.holders]
    return attributes


def folded_resource(rs: ResourceState) -> dict[str, Any]:
    """What the op of a resource that folds into it carries of it."""
    family = rs.family
    attributes: dict[str, Any] = {
        sc.RESOURCE_CONCRETE_TYPE: family.concrete_type,
        sc.RESOURCE_KIND: family.kind,
        sc.RESOURCE_IS_INTERNAL: rs.internal,
    }
    attributes.update((sc.RESOURCE_STATE_PREFIX + k, v) for k, v in rs.last.items())
    attributes.update((f"{sc.RESOURCE_STATE_PREFIX}{k}.unit", unit) for k, unit in family.units.items())
    return attributes


# -- statistics at a window's or the span's end ----------------------------------------------


def task_statistics(st: TaskState, end: int) -> dict[str, Any]:
    """Tokio Console's task statistics, as of ``end``."""
    lifetime = max(end - st.start, 0)
    busy, scheduled = st.busy, st.scheduled
    attributes: dict[str, Any] = {
        sc.TASK_POLLS: st.polls,
        sc.TASK_BUSY: seconds(busy),
        sc.TASK_SCHEDULED: seconds(scheduled),
        sc.TASK_IDLE: seconds(lifetime - busy - scheduled),
        sc.TASK_WAKES: st.wakes,
        sc.TASK_SELF_WAKES: st.self_wakes,
        sc.TASK_WAKER_CLONES: st.clones,
        sc.TASK_WAKER_DROPS: st.drops,
    }
    if st.name is not None:
        attributes[sc.TASK_NAME] = st.name
    if st.folded is not None:
        attributes.update(folded_attributes(st.folded))
    return attributes


def resource_statistics(state: dict[str, StateValue], rs: ResourceState) -> dict[str, Any]:
    """The state (as replayed from the events exported so far, or the last
    observed) and what its ops waited."""
    attributes: dict[str, Any] = {sc.RESOURCE_STATE_PREFIX + k: v for k, v in state.items()}
    if rs.ops:
        attributes[sc.RESOURCE_OPS] = rs.ops
        attributes[sc.RESOURCE_WAIT_DURATION] = seconds(rs.wait_total)
        attributes[sc.RESOURCE_WAIT_LONGEST] = seconds(rs.wait_longest)
    return attributes


def op_statistics(op: Wait) -> dict[str, Any]:
    attributes: dict[str, Any] = {sc.ASYNC_OP_POLLS: op.polls}
    if op.outcome:
        attributes[sc.ASYNC_OP_OUTCOME] = op.outcome
    wakers = op.wakers
    if wakers:
        attributes.update(
            task_reference(wakers[-1], sc.WAKER_TASK_ID, sc.WAKER_TASK_NAME, sc.WAKER_TASK_FOLDED)
        )
    if op.state:
        attributes.update((sc.ASYNC_OP_STATE_PREFIX + k, v) for k, v in op.state.items())
    resource = op.resource
    if resource is not None and resource.family.folds_into_op:
        attributes.update(folded_resource(resource))
    return attributes


def folded_attributes(folded: Folded) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if folded.tasks:
        attributes[sc.FOLDED_TASKS] = folded.tasks
        for outcome, n in folded.tasks_by_outcome.items():
            attributes[sc.FOLDED_TASKS_PREFIX + outcome] = n
        attributes[sc.FOLDED_TASKS_DURATION] = seconds(folded.task_total)
        attributes[sc.FOLDED_TASKS_LONGEST] = seconds(folded.task_longest)
    if folded.waits:
        keys = sorted(folded.waits)
        stats = [folded.waits[k] for k in keys]
        attributes[sc.FOLDED_WAITS] = sum(s[0] for s in stats)
        attributes[sc.FOLDED_WAITS_SOURCES] = [source for _, source in keys]
        attributes[sc.FOLDED_WAITS_TYPES] = [concrete_type for concrete_type, _ in keys]
        attributes[sc.FOLDED_WAITS_COUNTS] = [s[0] for s in stats]
        attributes[sc.FOLDED_WAITS_DURATIONS] = [seconds(s[1]) for s in stats]
        attributes[sc.FOLDED_WAITS_LONGEST] = [seconds(s[2]) for s in stats]
    if folded.resources:
        types = sorted(folded.resources)
        attributes[sc.FOLDED_RESOURCES] = sum(folded.resources.values())
        attributes[sc.FOLDED_RESOURCES_TYPES] = types
        attributes[sc.FOLDED_RESOURCES_COUNTS] = [folded.resources[t] for t in types]
    return attributes


def error_attributes(error: ErrorInfo) -> dict[str, Any]:
    """OpenTelemetry's standard ``exception`` event."""
    return {
        "exception.type": error.type,
        "exception.message": error.message,
        "exception.stacktrace": error.stacktrace,
    }


# -- references: every id names a span of the trace, or says what it was --------------------


def task_reference(st: TaskState, id_key: str, name_key: str, folded_key: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {id_key: st.id, name_key: st.label()}
    if folded_key is not None and st.fate == Fate.FOLDED:
        attributes[folded_key] = True
    return attributes


def resource_reference(rs: ResourceState) -> dict[str, Any]:
    if rs.family.folds_into_op:
        return {}  # no span of its own: its op is named instead
    attributes: dict[str, Any] = {sc.RESOURCE_ID: rs.id, sc.RESOURCE_CONCRETE_TYPE: rs.family.concrete_type}
    if rs.fate == Fate.FOLDED:
        attributes[sc.RESOURCE_FOLDED] = True
    return attributes


def op_reference(op: Wait) -> dict[str, Any]:
    """An op is named when it is a span, or marked when it was folded; while
    it is still undecided it is not named at all."""
    if op.fate == Fate.SHOWN:
        return {sc.ASYNC_OP_ID: op.id}
    if op.fate == Fate.FOLDED:
        return {sc.ASYNC_OP_ID: op.id, sc.ASYNC_OP_SOURCE: op.source, sc.ASYNC_OP_FOLDED: True}
    return {}


# -- events ----------------------------------------------------------------------------------


def _references(attributes: dict[str, Any], resource: Any, op: Any) -> None:
    if resource is not None:
        attributes.update(resource_reference(resource))
    if op is not None:
        attributes.update(op_reference(op))


def _clone(entity: Entity, event: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    _, _, resource, op, awaited = event
    attributes: dict[str, Any] = {sc.TASK_ID: entity.id}
    _references(attributes, resource, op)
    if awaited is not None:
        attributes.update(
            task_reference(awaited, sc.AWAITED_TASK_ID, sc.AWAITED_TASK_NAME, sc.AWAITED_TASK_FOLDED)
        )
    return sc.EVENT_WAKER_CLONE, attributes


def _wake(entity: Entity, event: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    _, _, cause, waker, resource, op = event
    attributes: dict[str, Any] = {sc.TASK_ID: entity.id, sc.WAKE_CAUSE: cause, sc.WAKE_SELF: waker is entity}
    if waker is not None:
        attributes.update(task_reference(waker, sc.WAKER_TASK_ID, sc.WAKER_TASK_NAME, sc.WAKER_TASK_FOLDED))
    _references(attributes, resource, op)
    return sc.EVENT_WAKER_WAKE, attributes


def _drop(entity: Entity, event: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    _, _, reason, resource, op = event
    attributes: dict[str, Any] = {sc.TASK_ID: entity.id, sc.WAKER_DROP_REASON: reason}
    _references(attributes, resource, op)
    return sc.EVENT_WAKER_DROP, attributes


def state_attributes(attribute: str, value: StateValue, op: str, unit: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {attribute: value, f"{attribute}.op": op}
    if unit is not None:
        attributes[f"{attribute}.unit"] = unit
    return attributes


def _state(entity: Entity, event: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    _, _, attribute, value, op, unit = event
    return sc.EVENT_STATE_UPDATE, state_attributes(attribute, value, op, unit)


def _poll_op(entity: Entity, event: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    _, _, op_name, is_ready = event
    return sc.EVENT_POLL_OP, {sc.EVENT_OP_NAME: op_name, sc.EVENT_IS_READY: is_ready}


def _lint(entity: Entity, event: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    _, _, kind, severity, message, flat = event
    attributes: dict[str, Any] = {sc.LINT_SEVERITY: severity, sc.LINT_MESSAGE: message}
    attributes.update((sc.LINT_PREFIX + flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
    return kind, attributes


def _error(entity: Entity, event: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    return "exception", error_attributes(event[2])


_EVENTS = {
    Event.CLONE: _clone,
    Event.WAKE: _wake,
    Event.DROP: _drop,
    Event.STATE: _state,
    Event.POLL_OP: _poll_op,
    Event.LINT: _lint,
    Event.ERROR: _error,
}


def span_event(entity: Entity, event: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    """The span event's name and attributes (its time is ``event[1]``)."""
    return _EVENTS[event[0]](entity, event)


def state_override(state: dict[str, StateValue], units: dict[str, str]) -> dict[str, Any]:
    """The whole state as one ``state_update`` (every attribute ``override``),
    as Tokio opens a resource's span: the exported span alone replays to the
    real state after every event."""
    attributes: dict[str, Any] = {}
    for name, value in state.items():
        attributes.update(state_attributes(name, value, StateOp.OVERRIDE, units.get(name)))
    return attributes


def replay(state: dict[str, StateValue], attribute: str, value: StateValue, op: str) -> None:
    """Apply one state update to a replayed state."""
    current = state.get(attribute)
    if op == StateOp.ADD and isinstance(current, (int, float)) and isinstance(value, (int, float)):
        state[attribute] = current + value
    elif op == StateOp.SUB and isinstance(current, (int, float)) and isinstance(value, (int, float)):
        state[attribute] = current - value
    else:
        state[attribute] = value
