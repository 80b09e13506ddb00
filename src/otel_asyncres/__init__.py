"""otel-asyncres: Tokio-style runtime instrumentation for asyncio, on OpenTelemetry.

``instrument()`` hooks every event loop; tasks, resources and the async
operations tasks perform on them become records, and the bridge turns records
into spans with explicit parents, exported like any OpenTelemetry trace.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .config import ConfigError
from .version import __version__

if TYPE_CHECKING:
    from .custom import Operation, Resource
    from .diagnostics import Deadlock, DeadlockedTask
    from .session import flush, instrument, uninstrument

__all__ = [
    "ConfigError",
    "Deadlock",
    "DeadlockedTask",
    "Operation",
    "Resource",
    "__version__",
    "flush",
    "instrument",
    "uninstrument",
]

#: The names above that are imported on first use, and their modules: the
#: launcher of ``otel-asyncres run`` (``otel_asyncres.cli``) needs none of
#: them, and importing them costs every instrumented program's start-up.
_LAZY = {
    "Operation": "custom",
    "Resource": "custom",
    "Deadlock": "diagnostics",
    "DeadlockedTask": "diagnostics",
    "flush": "session",
    "instrument": "session",
    "uninstrument": "session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
