"""otel-asyncres: Tokio-style runtime instrumentation for asyncio, on OpenTelemetry.

``instrument()`` hooks every event loop; tasks, resources and the async
operations tasks perform on them become records, and the bridge turns records
into spans with explicit parents, exported like any OpenTelemetry trace.
"""

from .config import ConfigError
from .custom import Operation, Resource
from .session import flush, instrument, uninstrument
from .version import __version__

__all__ = ["ConfigError", "Operation", "Resource", "__version__", "flush", "instrument", "uninstrument"]
