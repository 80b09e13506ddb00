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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: Any) -> Callable[[type], type]:
        return lambda cls: cls


EXPORTERS = ("otlp", "console", "none")
DETAILS = ("tasks", "resources", "all")
PROTOCOLS = ("grpc", "http/protobuf")
OP_PARENTS = ("task", "resource")
FUTURE_MODES = ("adopt", "subclass")

#: The budget's default: spans plus span events per second (docs/performance.md
#: says how it was chosen).
DEFAULT_BUDGET = 2000.0

_DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A configuration value that cannot work; the message is one line."""


@dataclass_transform(frozen_default=True)
class Frozen:
    """``@dataclass(frozen=True)`` for the classes here, without its cost at
    import: ``dataclasses`` imports ``inspect``, and generates and compiles code
    for every class, milliseconds that the launcher of ``otel-asyncres run`` and
    every instrumented program would pay at start-up (docs/performance.md,
    Start-up). The fields are the annotated names of a subclass, in order; a
    class attribute is the field's default (shared, so it must be immutable).
    Instances are read-only, compared, hashed and shown by their fields."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(cls.__annotations__)
        cls._defaults = {name: vars(cls)[name] for name in cls._fields if name in vars(cls)}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        name = type(self).__name__
        if len(args) > len(self._fields):
            raise TypeError(f"{name}() takes {len(self._fields)} positional arguments, not {len(args)}")
        values = dict(zip(self._fields[: len(args)], args, strict=True))
        for key, value in kwargs.items():
            if key not in self._fields or key in values:
                raise TypeError(f"{name}() got an unexpected or repeated keyword argument {key!r}")
            values[key] = value
        for key in self._fields:
            if key not in values:
                if key not in self._defaults:
                    raise TypeError(f"{name}() missing required argument: {key!r}")
                values[key] = self._defaults[key]
        vars(self).update(values)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, key) for key in self._fields)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {key!r} of a frozen {type(self).__name__}")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"cannot delete field {key!r} of a frozen {type(self).__name__}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Frozen)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={getattr(self, key)!r}" for key in self._fields)
        return f"{type(self).__qualname__}({fields})"


class ExportQueueSettings(Frozen):
    """OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE and
    OTEL_BSP_SCHEDULE_DELAY, as the BatchSpanProcessor reads them; the
    defaults are larger and more frequent than the SDK's (2048 spans, every
    5 s): a program that makes thousands of spans a second is the use here."""

    max_queue_size: int = 8192
    max_export_batch_size: int = 512
    schedule_delay: float = 1.0  # seconds
    #: How long the export at exit may take in all (seconds): the OTLP
    #: timeout when one is set (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT or
    #: OTEL_EXPORTER_OTLP_TIMEOUT, in seconds as the Python exporters read
    #: it), else a short default: a collector that is down must not hold a
    #: program's exit for the exporters' retries.
    exit_timeout: float = 5.0


class Settings(Frozen):
    exporters: tuple[str, ...] = ("console",)
    #: The traces endpoint, complete (for http/protobuf including /v1/traces).
    endpoint: str = "http://localhost:4317"
    protocol: str = "grpc"
    service_name: str | None = None
    op_parent: str = "task"
    #: None: as the detail level says (poll spans are part of ``all``).
    op_poll_spans: bool | None = None
    futures: str = "adopt"
    detail: str = "resources"
    #: Span data exported per second (spans plus span events) beyond which
    #: the shortest entities are folded into their parents; None: no limit.
    budget: float | None = DEFAULT_BUDGET
    min_task_duration: float = 0.0
    min_wait_duration: float = 0.0
    window_duration: float = 10.0
    window_events: int = 120
    internal: bool = False
    #: Diagnostics; None turns one off.
    long_poll_threshold: float | None = 0.1
    long_wait_threshold: float | None = 10.0
    self_wake_ratio: float | None = 0.5
    lost_wakers: bool = True
    deadlocks: bool = True
    #: Diagnostics also logged to the ``otel_asyncres`` logger (off: they
    #: travel only as span events, metrics and the exit summary, so a
    #: program's own log stream stays what it was).
    log_diagnostics: bool = False
    #: Runtime metrics (when there is a MeterProvider, or an OTLP endpoint).
    metrics: bool = True
    #: The export queue of a provider this package builds (OTEL_BSP_*).
    export_queue: ExportQueueSettings = ExportQueueSettings()


class Option(Frozen):
    """One option of this package: a keyword argument of ``instrument()``,
    a flag of ``otel-asyncres run`` and an ``OTEL_ASYNCRES_*`` variable."""

    name: str
    parse: Callable[[str, Any], Any]
    help: str

    @property
    def env(self) -> str:
        return "OTEL_ASYNCRES_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _choice_of(*allowed: str) -> Callable[[str, Any], str]:
    def parse(name: str, value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ConfigError(f"{name}={value!r} is not supported; use one of: {', '.join(allowed)}")
        return text

    return parse


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean; use true or false")


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(name: str, value: Any) -> float:
    """Seconds, from a number (milliseconds) or a number with a unit: 250us,
    5ms, 2s, 1m, 1h."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value) / 1000.0
    else:
        text = str(value).strip().lower()
        unit = next((u for u in sorted(_UNITS, key=len, reverse=True) if text.endswith(u)), None)
        number = text[: -len(unit)] if unit else text
        try:
            seconds = float(number) * (_UNITS[unit] if unit else 1e-3)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a duration; use e.g. 500us, 5ms or 2s") from None
    if seconds < 0:
        raise ConfigError(f"{name}={value!r} must not be negative")
    return seconds


_OFF = ("off", "none", "false", "0")


def _or_off(parse: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """The same option, or ``off`` (also none, false, 0) to turn it off."""

    def parse_or_off(name: str, value: Any) -> Any:
        if value is False or (isinstance(value, str) and value.strip().lower() in _OFF):
            return None
        return parse(name, value)

    return parse_or_off


def _ratio(name: str, value: Any) -> float:
    try:
        number = float(str(value).strip().rstrip("%")) / (100 if str(value).strip().endswith("%") else 1)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a ratio; use e.g. 0.5 or 50%") from None
    if not 0 <= number < 1:
        raise ConfigError(f"{name}={value!r} must be at least 0 and less than 1 (or 100%)")
    return number


def _rate(name: str, value: Any) -> float:
    """A number of units per second, positive."""
    try:
        number = float(str(value).strip().removesuffix("/s"))
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number; use e.g. 2000 (per second), or off") from None
    if number <= 0:
        raise ConfigError(f"{name}={value!r} must be positive (or off for no limit)")
    return number


def _event_budget(name: str, value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if not 1 <= number <= 127:
        raise ConfigError(f"{name}={value!r} must be between 1 and 127 (the SDK keeps 128 events per span)")
    return number


OPTIONS = (
    Option("op_parent", _choice_of(*OP_PARENTS), "parent of an async-op span: task or resource"),
    Option("op_poll_spans", _boolean, "a poll span and poll_op event per op poll (default: with detail=all)"),
    Option("futures", _choice_of(*FUTURE_MODES), "how futures are followed: adopt or subclass"),
    Option("detail", _choice_of(*DETAILS), "what gets spans: tasks, resources or all"),
    Option(
        "budget",
        _or_off(_rate),
        "span data per second (spans and span events) past which the shortest are folded (off: no limit)",
    ),
    Option("min_task_duration", _duration, "tasks (and resources) shorter than this are always folded"),
    Option("min_wait_duration", _duration, "waits shorter than this are always folded"),
    Option("window_duration", _duration, "a long-lived span is exported in windows this long"),
    Option("window_events", _event_budget, "... or in windows of at most this many events"),
    Option("internal", _boolean, "also show asyncio's own housekeeping tasks and resources"),
    Option(
        "long_poll_threshold", _or_off(_duration), "a poll this long is a long_poll diagnostic (off: none)"
    ),
    Option(
        "long_wait_threshold",
        _or_off(_duration),
        "an op waiting this long is a long_wait diagnostic (off: none)",
    ),
    Option(
        "self_wake_ratio",
        _or_off(_ratio),
        "above this share of self-wakes, a self_wakes diagnostic (off: none)",
    ),
    Option("lost_wakers", _boolean, "look for tasks that nothing can wake (lost_waker): true or false"),
    Option(
        "deadlocks", _boolean, "look for tasks waiting for each other in a cycle (deadlock): true or false"
    ),
    Option(
        "log_diagnostics",
        _boolean,
        "also log each diagnostic (WARNING/ERROR) to the otel_asyncres logger: true or false",
    ),
    Option("metrics", _boolean, "runtime metrics, with a MeterProvider or an OTLP endpoint: true or false"),
)
OPTION_NAMES = ("exporter", "endpoint", "protocol", "service_name", *(o.name for o in OPTIONS))


def sdk_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """OTEL_SDK_DISABLED, read as the OpenTelemetry SDK reads it (only ``true``,
    in any case, disables), except that a value the SDK would silently take
    for false (``1``, ``yes``) is an error here: whoever wrote it meant off."""
    env = os.environ if environ is None else environ
    value = env.get("OTEL_SDK_DISABLED") or ""
    text = value.strip().lower()
    if text not in ("", "true", "false"):
        raise ConfigError(f"OTEL_SDK_DISABLED={value!r} is not a boolean; use true or false")
    return text == "true"


def load_settings(
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    exporting: bool = True,
) -> Settings:
    """Resolve and validate every setting; raise ConfigError on the first bad one.

    ``exporting=False``: the application brings its own TracerProvider (the
    distro's, under ``opentelemetry-instrument``), so the exporter variables
    are its business, not ours to judge (``OTEL_TRACES_EXPORTER=zipkin`` is
    fine there); they are left at their defaults."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    env = os.environ if environ is None else environ
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; known options: {', '.join(OPTION_NAMES)}")
    if exporting:
        _check_sampler(env)
        exporters, endpoint, protocol = _exporter_settings(options, env)
        export_queue = _export_queue_settings(env)
    else:
        exporters, endpoint, protocol = Settings.exporters, Settings.endpoint, Settings.protocol
        export_queue = ExportQueueSettings()
    own: dict[str, Any] = {}
    for option in OPTIONS:
        if option.name in options:
            own[option.name] = option.parse(option.name, options[option.name])
        elif _text(env.get(option.env)) is not None:
            own[option.name] = option.parse(option.env, env[option.env])
    return Settings(
        exporters=exporters,
        endpoint=endpoint,
        protocol=protocol,
        service_name=_text(options.get("service_name") or env.get("OTEL_SERVICE_NAME")),
        export_queue=export_queue,
        **own,
    )


def _export_queue_settings(env: Mapping[str, str]) -> ExportQueueSettings:
    """The OTEL_BSP_* variables, checked as the SDK checks its arguments
    (positive, a batch no larger than the queue); OTEL_BSP_EXPORT_TIMEOUT is
    left to the exporter's own timeout (OTEL_EXPORTER_OTLP_TIMEOUT)."""
    default = ExportQueueSettings()
    queue = _positive_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", default.max_queue_size)
    batch = _positive_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", default.max_export_batch_size)
    delay_ms = _positive_int(env, "OTEL_BSP_SCHEDULE_DELAY", round(default.schedule_delay * 1000))
    if batch > queue:
        raise ConfigError(
            f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE={batch} is larger than OTEL_BSP_MAX_QUEUE_SIZE={queue}"
        )
    return ExportQueueSettings(queue, batch, delay_ms / 1000, _exit_timeout(env, default.exit_timeout))


def _exit_timeout(env: Mapping[str, str], default: float) -> float:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        value = _text(env.get(name))
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number of seconds") from None
        if not seconds > 0:
            raise ConfigError(f"{name}={value!r} must be positive")
        return seconds
    return default


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _text(env.get(name))
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if number <= 0:
        raise ConfigError(f"{name}={value!r} must be positive")
    return number


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _exporter_settings(
    options: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[tuple[str, ...], str, str]:
    chosen = _text(
        options.get("protocol")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    )
    protocol = "grpc" if chosen is None else _choice_of(*PROTOCOLS)("OTEL_EXPORTER_OTLP_PROTOCOL", chosen)
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


#: The samplers the OpenTelemetry SDK knows by name (OTEL_TRACES_SAMPLER),
#: and those of them that read OTEL_TRACES_SAMPLER_ARG as a ratio.
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")


def _check_sampler(env: Mapping[str, str]) -> None:
    """OTEL_TRACES_SAMPLER as the provider we build will read it. The SDK
    logs a line for a name or a ratio it does not understand and samples
    everything instead; here that is an error, before the program runs. A
    sampler installed as an ``opentelemetry_traces_sampler`` entry point is
    a name the SDK knows too."""
    value = env.get("OTEL_TRACES_SAMPLER")
    if value is None or not value.strip():
        return
    name = value.strip().lower()
    if name not in SAMPLERS and name not in _sampler_entry_points():
        raise ConfigError(
            f"OTEL_TRACES_SAMPLER={value!r} is not a sampler the OpenTelemetry SDK knows; "
            f"use one of: {', '.join(SAMPLERS)} (or an installed sampler's entry point name)"
        )
    arg = env.get("OTEL_TRACES_SAMPLER_ARG")
    if name in _RATIO_SAMPLERS and arg is not None and arg.strip():
        try:
            ratio = float(arg)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG={arg!r} is not a ratio between 0 and 1 (for {name})")


def _sampler_entry_points() -> set[str]:
    from importlib.metadata import entry_points  # only for a name that is not built in

    return {ep.name.lower() for ep in entry_points(group="opentelemetry_traces_sampler")}


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
    if base is not None:
        _check_url(url, source)
    if protocol == "http/protobuf":
        url = url.rstrip("/") + "/v1/traces"
    return url, base is not None


def _check_url(url: str, source: str) -> None:
    from urllib.parse import urlparse  # only for an endpoint given (start-up of the console default)

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
