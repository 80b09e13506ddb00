"""One configuration story: OTEL_SDK_DISABLED turns everything off; the
exporter variables belong to whoever builds the TracerProvider; and
docs/configuration.md lists every option there is."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_asyncres
from otel_asyncres.config import OPTIONS, ConfigError, load_settings, sdk_disabled
from otel_asyncres.export.setup import build_tracer_provider
from otel_asyncres.session import current_session
from otlp_receivers import child_env
from test_uninstrument import Snapshot

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No OTEL_* variable from outside, no session before or after."""
    assert current_session() is None, "a previous test left asyncio instrumented"
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    try:
        yield monkeypatch
    finally:
        otel_asyncres.uninstrument()


@pytest.mark.parametrize("value", ["true", "TRUE", " True "])
def test_sdk_disabled_makes_instrument_a_no_op(clean: pytest.MonkeyPatch, value: str) -> None:
    clean.setenv("OTEL_SDK_DISABLED", value)
    before = Snapshot.take()
    otel_asyncres.instrument(detail="no such detail")  # not even read
    assert current_session() is None
    assert before.differences(Snapshot.take()) == []


@pytest.mark.parametrize("value, disabled", [("", False), ("false", False), ("FALSE", False), ("true", True)])
def test_sdk_disabled_values(value: str, disabled: bool) -> None:
    assert sdk_disabled({"OTEL_SDK_DISABLED": value}) is disabled
    assert sdk_disabled({}) is False


@pytest.mark.parametrize("value", ["1", "yes", "on", "disabled"])
def test_sdk_disabled_takes_no_value_the_sdk_would_misread(clean: pytest.MonkeyPatch, value: str) -> None:
    """The SDK takes anything but "true" for false; a user who wrote "1" meant off."""
    clean.setenv("OTEL_SDK_DISABLED", value)
    with pytest.raises(ConfigError, match=f"OTEL_SDK_DISABLED={value!r} is not a boolean"):
        otel_asyncres.instrument()
    assert current_session() is None


def test_exporter_variables_are_not_ours_with_an_application_provider(clean: pytest.MonkeyPatch) -> None:
    """Under opentelemetry-instrument the distro builds the provider from
    OTEL_TRACES_EXPORTER, with names (zipkin, otlp_proto_http) this package
    does not export to itself: they must not stop it."""
    clean.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    clean.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match="http/json"):
        load_settings()
    otel_asyncres.instrument(tracer_provider=TracerProvider())
    assert current_session() is not None
    # Our own options are still ours to check.
    otel_asyncres.uninstrument()
    with pytest.raises(ConfigError, match="detail"):
        otel_asyncres.instrument(tracer_provider=TracerProvider(), detail="no such detail")


SHOW = """\
    import os, sys

    print(sorted(m for m in sys.modules if m.startswith("otel_asyncres")))
    print(os.environ.get("PYTHONPATH"))
    sys.exit(3)
"""


def test_sdk_disabled_run_is_plain_python(tmp_path: Path) -> None:
    script = tmp_path / "show.py"
    script.write_text(textwrap.dedent(SHOW))
    env = child_env(OTEL_SDK_DISABLED="true")
    plain, ours = (
        subprocess.run(
            [*command, str(script)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT
        )
        for command in ([sys.executable], [sys.executable, "-m", "otel_asyncres", "run", "--detail", "all"])
    )
    assert (ours.stdout, ours.stderr, ours.returncode) == (plain.stdout, plain.stderr, plain.returncode)
    # Nothing of ours loaded, no bootstrap on the path.
    assert ours.stdout == f"[]\n{env.get('PYTHONPATH')}\n"
    assert ours.returncode == 3


def test_configuration_reference_is_current() -> None:
    """docs/configuration.md's option table is generated from config.OPTIONS:
    a new option, or a changed default or meaning, fails here until the table
    is regenerated."""
    spec = importlib.util.spec_from_file_location(
        "update_configuration", ROOT / "docs" / "update_configuration.py"
    )
    assert spec is not None and spec.loader is not None
    updater = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(updater)
    text = updater.PATH.read_text()
    assert updater.render(text) == text, (
        "docs/configuration.md is stale: run .venv/bin/python docs/update_configuration.py"
    )
    for option in OPTIONS:
        assert f"| `{option.name}` | `{option.flag}` | `{option.env}` |" in text
    for name in ("exporter", "endpoint", "protocol", "service_name"):
        assert re.search(rf"^\| `{name}` \| `--{name.replace('_', '-')}` \|", text, re.MULTILINE), name
    assert "OTEL_SDK_DISABLED" in text


def test_bsp_variables_size_the_export_queue_of_a_provider_we_build() -> None:
    environ = {
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10",
        "OTEL_BSP_SCHEDULE_DELAY": "250",
    }
    settings = load_settings({"exporter": "otlp"}, environ=environ)
    provider, export = build_tracer_provider(settings)
    try:
        (queue,) = export.queues
        assert (queue._max_queue, queue._batch, queue._delay) == (100, 10, 0.25)
    finally:
        provider.shutdown()
    default = load_settings({"exporter": "otlp"}, environ={}).export_queue
    assert (default.max_queue_size, default.max_export_batch_size, default.schedule_delay) == (8192, 512, 1.0)
    # With the application's provider they are its BatchSpanProcessor's business.
    assert load_settings(environ={"OTEL_BSP_MAX_QUEUE_SIZE": "x"}, exporting=False).export_queue == default
