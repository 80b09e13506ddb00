"""Names on the OpenTelemetry side: span names, attributes, events, links.

These are a contract (DESIGN.md §2; docs/mapping.md explains each one): tests
and users' queries depend on them, so they live in one place.
"""

from __future__ import annotations

# Span names (low cardinality): "task <label>", "resource <type>", "async_op <source>", "poll".
TASK_SPAN = "task {}"
RESOURCE_SPAN = "resource {}"
ASYNC_OP_SPAN = "async_op {}"
POLL_SPAN = "poll"

# Source locations (OpenTelemetry code.* semantic conventions), always user code.
CODE_FILE_PATH = "code.file.path"
CODE_LINE_NUMBER = "code.line.number"
CODE_FUNCTION_NAME = "code.function.name"

# Tasks.
TASK_ID = "asyncio.task.id"
TASK_NAME = "asyncio.task.name"
TASK_COROUTINE = "asyncio.task.coroutine"
TASK_PARENT_ID = "asyncio.task.parent_id"
TASK_ADOPTED = "asyncio.task.adopted"
TASK_KIND = "asyncio.task.kind"
TASK_OUTCOME = "asyncio.task.outcome"
TASK_POLLS = "asyncio.task.polls"
TASK_BUSY = "asyncio.task.busy_duration"
TASK_SCHEDULED = "asyncio.task.scheduled_duration"
TASK_IDLE = "asyncio.task.idle_duration"
TASK_WAKES = "asyncio.task.wakes"
TASK_SELF_WAKES = "asyncio.task.self_wakes"
TASK_WAKER_CLONES = "asyncio.task.waker_clones"
TASK_WAKER_DROPS = "asyncio.task.waker_drops"

# Resources.
RESOURCE_PREFIX = "asyncio.resource."
RESOURCE_ID = "asyncio.resource.id"
RESOURCE_CONCRETE_TYPE = "asyncio.resource.concrete_type"
RESOURCE_KIND = "asyncio.resource.kind"
#: What the program calls it: the target of the assignment that made it.
RESOURCE_NAME = "asyncio.resource.name"
RESOURCE_IS_INTERNAL = "asyncio.resource.is_internal"
RESOURCE_ADOPTED = "asyncio.resource.adopted"
RESOURCE_PARENT_ID = "asyncio.resource.parent_id"
#: Prefix of a resource span's state attributes: ``asyncio.resource.state.locked``.
RESOURCE_STATE_PREFIX = "asyncio.resource.state."

# Async operations.
ASYNC_OP_ID = "asyncio.async_op.id"
ASYNC_OP_SOURCE = "asyncio.async_op.source"
ASYNC_OP_OUTCOME = "asyncio.async_op.outcome"
ASYNC_OP_POLLS = "asyncio.async_op.polls"
ASYNC_OP_STATE_PREFIX = "asyncio.async_op.state."
POLL_IS_READY = "asyncio.poll.is_ready"

# Wakers.
WAKER_TASK_ID = "asyncio.waker.task.id"
WAKE_CAUSE = "asyncio.wake.cause"
WAKE_SELF = "asyncio.wake.self"
WAKER_DROP_REASON = "asyncio.waker.drop_reason"
AWAITED_TASK_ID = "asyncio.awaited_task.id"

# Links: why a span points at another one.
LINK_RELATION = "asyncio.link.relation"
LINK_SPAWNED_BY = "spawned_by"
LINK_AWAITED_BY = "awaited_by"
LINK_RESOURCE = "resource"
#: An op to the tasks that held what it waited for when it began.
LINK_HELD_BY = "held_by"
LINK_WOKEN_BY = "woken_by"

#: Set on spans still open when the program ended (flushed, not finished).
UNFINISHED = "asyncio.unfinished"

# Windows: a long-lived entity exported as consecutive spans.
WINDOW_PREFIX = "asyncio.window."
WINDOW_INDEX = "asyncio.window.index"
WINDOW_LAST = "asyncio.window.last"
LINK_PREVIOUS_WINDOW = "previous_window"

#: On the next span exported after some were dropped by the export queue: how many.
DROPPED_SPANS = "otel_asyncres.dropped_spans"
#: On the next span exported after entities could not be handed to the
#: bridge (its queue was full): how many, by kind (``.task``, ``.op``, ``.resource``).
DROPPED_PREFIX = "otel_asyncres.dropped."

# What was folded into a span instead of shown (past the budget): counts and
# aggregate statistics, on the span above what was folded.
FOLDED_TASKS = "asyncio.folded.tasks"
#: ``asyncio.folded.tasks.ok``, ``.error``, ``.cancelled``, ``.lost``.
FOLDED_TASKS_PREFIX = "asyncio.folded.tasks."
FOLDED_TASKS_DURATION = "asyncio.folded.tasks.duration"
FOLDED_TASKS_LONGEST = "asyncio.folded.tasks.longest"
FOLDED_WAITS = "asyncio.folded.waits"
#: Parallel arrays, one item per (op source, resource type).
FOLDED_WAITS_SOURCES = "asyncio.folded.waits.sources"
FOLDED_WAITS_TYPES = "asyncio.folded.waits.resource_types"
FOLDED_WAITS_COUNTS = "asyncio.folded.waits.counts"
FOLDED_WAITS_DURATIONS = "asyncio.folded.waits.durations"
FOLDED_WAITS_LONGEST = "asyncio.folded.waits.longest"
FOLDED_RESOURCES = "asyncio.folded.resources"
FOLDED_RESOURCES_TYPES = "asyncio.folded.resources.types"
FOLDED_RESOURCES_COUNTS = "asyncio.folded.resources.counts"
#: Events of this span that were not kept (the window's room, the budget).
EVENTS_FOLDED = "asyncio.events.folded"

# What a resource's ops waited, in all (every op, shown or folded).
RESOURCE_OPS = "asyncio.resource.ops"
RESOURCE_WAIT_DURATION = "asyncio.resource.wait_duration"
RESOURCE_WAIT_LONGEST = "asyncio.resource.wait_longest"

# An id named in an event or attribute that is no span of the trace: what it
# names, and that it was folded.
WAKER_TASK_NAME = "asyncio.waker.task.name"
WAKER_TASK_FOLDED = "asyncio.waker.task.folded"
AWAITED_TASK_NAME = "asyncio.awaited_task.name"
AWAITED_TASK_FOLDED = "asyncio.awaited_task.folded"
RESOURCE_FOLDED = "asyncio.resource.folded"
ASYNC_OP_FOLDED = "asyncio.async_op.folded"

# Events (Tokio's names).
EVENT_STATE_UPDATE = "state_update"
EVENT_POLL_OP = "poll_op"
EVENT_WAKER_CLONE = "waker.clone"
EVENT_WAKER_WAKE = "waker.wake"
EVENT_WAKER_DROP = "waker.drop"
EVENT_OP_NAME = "op_name"
EVENT_IS_READY = "is_ready"

# Diagnostics (docs/mapping.md, "Diagnostics"): span events named after the
# lint (``long_poll``, ``self_wakes``, ``lost_waker``, ``long_wait``,
# ``deadlock``) on the task concerned; what they found under this prefix.
LINT_PREFIX = "asyncio.lint."
LINT_SEVERITY = "asyncio.lint.severity"
LINT_MESSAGE = "asyncio.lint.message"
#: The tasks holding what an op waits for when it began: ids and names.
HELD_BY_IDS = "asyncio.async_op.held_by.task_ids"
HELD_BY_NAMES = "asyncio.async_op.held_by.task_names"
