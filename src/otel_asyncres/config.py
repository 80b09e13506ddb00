"""Configuration: keyword arguments, command-line flags and environment variables.

OpenTelemetry users configure exporters with the standard ``OTEL_*`` variables;
those keep their meaning here. This package's own options use the prefix
``OTEL_ASYNCRES_``. An explicit option (a keyword argument of ``instrument()``
or a flag of ``otel-asyncres run``) wins over the environment, which wins over
the default. Every value is validated up front, so a mistake is one clear line
before the program starts, not a silent lack of traces.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")
OP_PARENTS = ("task", "resource")
FUTURE_MODES = ("adopt", "subclass")

_DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A configuration value that cannot work; the message is one line."""


@dataclass(frozen=True)
class Settings:
    exporters: tuple[str, ...] = ("console",)
    #: The traces endpoint, complete (for http/protobuf including /v1/traces).
    endpoint: str = "http://localhost:4317"
    protocol: str = "grpc"
    service_name: str | None = None
    op_parent: str = "task"
    op_poll_spans: bool = True
    futures: str = "adopt"


#: option name -> (environment variable, parser); OTEL_* exporter settings are
#: resolved together in ``_exporter_settings``.
_OWN_OPTIONS = {
    "op_parent": "OTEL_ASYNCRES_OP_PARENT",
    "op_poll_spans": "OTEL_ASYNCRES_OP_POLL_SPANS",
    "futures": "OTEL_ASYNCRES_FUTURES",
}
OPTION_NAMES = ("exporter", "endpoint", "protocol", "service_name", *_OWN_OPTIONS)


def load_settings(
    options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve and validate every setting; raise ConfigError on the first bad one."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    env = os.environ if environ is None else environ
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; known options: {', '.join(OPTION_NAMES)}")
    exporters, endpoint, protocol = _exporter_settings(options, env)
    return Settings(
        exporters=exporters,
        endpoint=endpoint,
        protocol=protocol,
        service_name=_text(options.get("service_name") or env.get("OTEL_SERVICE_NAME")),
        op_parent=_choice("op_parent", _own(options, env, "op_parent"), OP_PARENTS, "task"),
        op_poll_spans=_boolean("op_poll_spans", _own(options, env, "op_poll_spans"), True),
        futures=_choice("futures", _own(options, env, "futures"), FUTURE_MODES, "adopt"),
    )


def _own(options: Mapping[str, Any], env: Mapping[str, str], name: str) -> Any:
    if name in options:
        return options[name]
    return env.get(_OWN_OPTIONS[name])


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _choice(name: str, value: Any, allowed: tuple[str, ...], default: str) -> str:
    text = _text(value)
    if text is None:
        return default
    if text.lower() not in allowed:
        raise ConfigError(f"{name}={text!r} is not supported; use one of: {', '.join(allowed)}")
    return text.lower()


def _boolean(name: str, value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value)
    if text is None:
        return default
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={text!r} is not a boolean; use true or false")


def _exporter_settings(
    options: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[tuple[str, ...], str, str]:
    protocol = _choice(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        options.get("protocol")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL"),
        PROTOCOLS,
        "grpc",
    )
    endpoint, explicit = _endpoint(options, env, protocol)
    names = options.get("exporter") or env.get("OTEL_TRACES_EXPORTER")
    if names is None:
        exporters: tuple[str, ...] = ("otlp",) if explicit else ("console",)
    else:
        parts = [p.strip().lower() for p in str(names).split(",") if p.strip()]
        bad = [p for p in parts if p not in EXPORTERS]
        if bad or not parts:
            raise ConfigError(
                f"unknown exporter {bad[0] if bad else str(names)!r} (OTEL_TRACES_EXPORTER / --exporter); "
                f"use one or more of: {', '.join(EXPORTERS)}"
            )
        exporters = tuple(dict.fromkeys(p for p in parts if p != "none"))
    return exporters, endpoint, protocol


def _endpoint(options: Mapping[str, Any], env: Mapping[str, str], protocol: str) -> tuple[str, bool]:
    """The complete traces endpoint, and whether one was configured at all.

    As in the OpenTelemetry specification: the signal-specific variable is used
    as is; the base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) gets ``/v1/traces``
    appended for http/protobuf. An explicit ``endpoint`` option (``--endpoint``)
    is a base endpoint and wins over both variables."""
    specific = _text(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    if specific is not None and not options.get("endpoint"):
        _check_url(specific, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return specific, True
    source = "--endpoint" if options.get("endpoint") else "OTEL_EXPORTER_OTLP_ENDPOINT"
    base = _text(options.get("endpoint") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    url = base or _DEFAULT_ENDPOINTS[protocol]
    _check_url(url, source)
    if protocol == "http/protobuf":
        url = url.rstrip("/") + "/v1/traces"
    return url, base is not None


def _check_url(url: str, source: str) -> None:
    problem = None
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018  (raises ValueError on a bad port)
        if parsed.scheme not in ("http", "https"):
            problem = "it must start with http:// or https://"
        elif not parsed.hostname:
            problem = "it has no host"
    except ValueError as exc:
        problem = str(exc)
    if problem:
        raise ConfigError(
            f"invalid OTLP endpoint {url!r} from {source}: {problem} (e.g. http://localhost:4317)"
        )
