"""otel-asyncres: Tokio-style runtime instrumentation for asyncio, on OpenTelemetry.

``instrument()`` hooks every event loop; tasks, resources and the async
operations tasks perform on them become records, and the bridge turns records
into spans with explicit parents, exported like any OpenTelemetry trace.
"""

import logging

from .config import ConfigError
from .custom import Operation, Resource
from .diagnostics import Deadlock, DeadlockedTask
from .session import flush, instrument, uninstrument
from .version import __version__

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

# Diagnostics and internal errors are logged to "otel_asyncres"; an
# application that has not configured logging sees them in its traces and the
# exit summary, not as stray lines on its stderr.
logging.getLogger("otel_asyncres").addHandler(logging.NullHandler())
