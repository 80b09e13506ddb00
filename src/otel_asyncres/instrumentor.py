"""The ``opentelemetry-instrument`` entry point: ``AsyncioRuntimeInstrumentor``.

Registered under the ``opentelemetry_instrumentor`` entry-point group as
``otel_asyncres``, so ``opentelemetry-instrument python app.py`` turns the
runtime instrumentation on with the providers the distro configured, and
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=otel_asyncres`` leaves it off. This is
the only module that needs opentelemetry-instrumentation (the ``auto`` extra);
nothing else imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

try:
    # The module says "# type: ignore" for itself: mypy sees nothing in it.
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "otel_asyncres.instrumentor needs opentelemetry-instrumentation: pip install 'otel-asyncres[auto]'"
    ) from exc

from .config import ConfigError
from .session import instrument, uninstrument

_logger = logging.getLogger("otel_asyncres")


class AsyncioRuntimeInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Tasks, resources, async ops and wakers of asyncio, as spans.

    ``instrument(tracer_provider=..., meter_provider=..., **options)`` takes
    the keyword arguments of ``otel_asyncres.instrument()``; without providers
    the global ones are used (the distro's, under ``opentelemetry-instrument``).
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        # asyncio is the standard library's: nothing to find installed.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        try:
            instrument(**kwargs)
        except ConfigError as exc:
            # The distro would abort every instrumentor after this one, and
            # the program must run as it would without us: say it, do nothing.
            _logger.error("otel-asyncres: not instrumenting: %s", exc)

    def _uninstrument(self, **kwargs: Any) -> None:
        uninstrument()
