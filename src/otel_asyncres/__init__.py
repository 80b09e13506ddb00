"""otel-asyncres: Tokio-style runtime instrumentation for asyncio, on OpenTelemetry.

``instrument()`` hooks every event loop; tasks, resources and the async
operations tasks perform on them become records, and the bridge turns records
into spans with explicit parents, exported like any OpenTelemetry trace.
"""

import logging

# First: whether the hot modules load compiled or from their sources.
from . import _core
from .config import ConfigError
from .custom import Operation, Resource
from .diagnostics import Deadlock, DeadlockedTask
from .session import flush, instrument, uninstrument
from .version import __version__

#: Whether the loop-side hot path runs compiled (Cython) or as pure Python
#: (see docs/performance.md, "Compiled core"); ``COMPILED_REASON`` says why.
COMPILED, COMPILED_REASON = _core.loaded()

__all__ = [
    "COMPILED",
    "COMPILED_REASON",
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

# Diagnostics and internal errors are logged to "otel_asyncres"; an
# application that has not configured logging sees them in its traces and the
# exit summary, not as stray lines on its stderr.
logging.getLogger("otel_asyncres").addHandler(logging.NullHandler())
