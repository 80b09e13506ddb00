"""otel-asyncres: Tokio-style runtime instrumentation for asyncio, on OpenTelemetry.

``instrument()`` hooks every event loop; tasks, resources and the async
operations tasks perform on them are followed by state kept on the loop, and
what is shown crosses to the bridge, which makes it spans with explicit
parents, exported like any OpenTelemetry trace.
"""

import importlib
import sys
from types import ModuleType
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
    value = getattr(_import(f".{module}"), name)
    globals()[name] = value
    return value


def _import(module: str) -> ModuleType:
    """Import a module of this package; on another thread when this one runs
    an event loop: importing the instrumentation probes asyncio (it runs a task
    on a loop of its own), which a thread running a loop cannot do, and a name
    first used in a coroutine is imported there."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or asyncio._get_running_loop() is None:
        return importlib.import_module(module, __name__)
    import threading

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(importlib.import_module(module, __name__))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, name="otel-asyncres-import")
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]  # type: ignore[no-any-return]
