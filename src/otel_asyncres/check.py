"""``otel-asyncres check``: the configuration in effect, and whether the OTLP
endpoint takes an export.

A program that exports nothing fails silently, and the usual causes are a
variable set in the wrong shell, a flag that lost to another, or a collector
that is down or listens elsewhere. This shows each setting with where it came
from (flag, environment variable or default), then sends the endpoint a real,
empty OTLP export request through the same exporter a program would use (so
headers, certificates and compression from OTEL_EXPORTER_OTLP_* count).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, TextIO

from .config import OPTIONS, ConfigError, Frozen, Option, Settings, load_settings, sdk_disabled
from .version import __version__

# The SDK and the exporters are imported where they are used: the command line
# imports this module for every command, ``run`` included (start-up cost).

#: Seconds the export request may take, retries included.
DEFAULT_TIMEOUT = 5.0

#: The variables each exporter setting is read from, in the order they win.
_EXPORT_VARIABLES = {
    "exporter": ("OTEL_TRACES_EXPORTER",),
    "endpoint": ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    "protocol": ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
    "service_name": ("OTEL_SERVICE_NAME",),
}

#: Exit statuses.
OK, UNREACHABLE, BAD_CONFIGURATION = 0, 1, 2


class Setting(Frozen):
    name: str
    value: str
    source: str


def effective_settings(options: Mapping[str, Any]) -> tuple[Settings, list[Setting]]:
    """The settings ``run`` would use, each as text with its source; raises
    ConfigError like ``run`` does."""
    environ = os.environ
    settings = load_settings(options)
    given = {name for name, value in options.items() if value is not None}
    rows = [
        Setting("exporter", ",".join(settings.exporters) or "none", _exporter_source(given, environ)),
        Setting("endpoint", settings.endpoint, _source("endpoint", given, environ)),
        Setting("protocol", settings.protocol, _source("protocol", given, environ)),
        _service_name(settings, given, environ),
    ]
    for option in OPTIONS:
        rows.append(
            Setting(
                option.name, text_of(option, getattr(settings, option.name)), _source(option, given, environ)
            )
        )
    return settings, rows


def _source(setting: str | Option, given: set[str], environ: Mapping[str, str]) -> str:
    """Where a setting came from, by the precedence load_settings applies."""
    name = setting if isinstance(setting, str) else setting.name
    if name in given:
        return "flag --" + name.replace("_", "-")
    variables = _EXPORT_VARIABLES[name] if isinstance(setting, str) else (setting.env,)
    for variable in variables:
        if (environ.get(variable) or "").strip():
            return "environment " + variable
    return "default"


def _exporter_source(given: set[str], environ: Mapping[str, str]) -> str:
    source = _source("exporter", given, environ)
    if source != "default":
        return source
    endpoint_set = _source("endpoint", given, environ) != "default"
    return "default (an endpoint is set)" if endpoint_set else "default (no endpoint is set)"


def _service_name(settings: Settings, given: set[str], environ: Mapping[str, str]) -> Setting:
    from opentelemetry.sdk.resources import SERVICE_NAME

    from .export.setup import resource_for

    source = _source("service_name", given, environ)
    named = str(resource_for(settings).attributes.get(SERVICE_NAME, ""))
    if source == "default" and not named.startswith("unknown_service"):
        return Setting("service_name", named, "environment OTEL_RESOURCE_ATTRIBUTES")
    if source == "default":
        return Setting("service_name", "(the program's name)", source)
    return Setting("service_name", named, source)


_UNITS = (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))


def text_of(option: Option, value: Any) -> str:
    """A value as it would be written in a flag or variable."""
    if value is None:
        return "off" if _parses_to(option, "off", None) else "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and _parses_to(option, "1ms", 1e-3):
        return _duration_text(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parses_to(option: Option, text: str, expected: Any) -> bool:
    """Whether the option reads ``text`` as ``expected``: options are known by
    how they parse, so a new option needs no entry here to be shown right."""
    try:
        return bool(option.parse(option.name, text) == expected)
    except ConfigError:
        return False


def _duration_text(seconds: float) -> str:
    if seconds == 0:
        return "0"
    for unit, size in _UNITS:
        count = seconds / size
        if count >= 1 and abs(count - round(count)) < 1e-6:
            return f"{round(count)}{unit}"
    return f"{seconds * 1e3:g}ms"


def probe(settings: Settings, timeout: float) -> tuple[str | None, float]:
    """Send the endpoint an empty export request through the program's own
    exporter: the error in one line (None when it was accepted), and the
    seconds it took. A connection that cannot be made is found first, by
    connecting: the exporter would retry until the timeout and then may say
    no more than that it gave up."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    from .export.setup import ExporterLog, ReportingExporter, otlp_exporter

    started = time.monotonic()
    unreachable = _connect(settings.endpoint, timeout)
    if unreachable is not None:
        return unreachable, time.monotonic() - started
    exporter = otlp_exporter(settings, timeout=timeout)
    reporter = ReportingExporter(exporter, settings.endpoint)
    log = ExporterLog([reporter])
    log.attach()
    try:
        result = reporter.export([])
    finally:
        elapsed = time.monotonic() - started
        log.detach()
        exporter.shutdown()
    return (None if result is SpanExportResult.SUCCESS else reporter.last_error), elapsed


def _connect(endpoint: str, timeout: float) -> str | None:
    import socket
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc}"
    return None


def report(options: Mapping[str, Any], out: TextIO, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Print the configuration and the endpoint's answer; the exit status.
    Raises ConfigError for a bad setting."""
    disabled = sdk_disabled()
    settings, rows = effective_settings(options)
    disabled_source = "environment OTEL_SDK_DISABLED" if os.environ.get("OTEL_SDK_DISABLED") else "default"
    rows.append(Setting("OTEL_SDK_DISABLED", "true" if disabled else "false", disabled_source))
    width = max(len(row.name) for row in rows)
    value_width = max(len(row.value) for row in rows)
    out.write(f"otel-asyncres {__version__}: configuration in effect\n")
    for row in rows:
        out.write(f"  {row.name:<{width}}  {row.value:<{value_width}}  {row.source}\n")
    if disabled:
        out.write("off: OTEL_SDK_DISABLED=true (instrument() does nothing, run runs programs plain)\n")
        return OK
    if "otlp" not in settings.exporters:
        out.write(f"otlp: not used (exporter: {','.join(settings.exporters) or 'none'}); nothing to reach\n")
        return OK
    target = f"{settings.endpoint} ({settings.protocol})"
    error, elapsed = probe(settings, timeout)
    if error is not None:
        out.write(f"otlp: {target}: export failed: {error}\n")
        return UNREACHABLE
    out.write(f"otlp: {target}: reachable (an empty export was accepted in {elapsed * 1e3:.0f} ms)\n")
    return OK
