"""``otel-asyncres check``: the configuration in effect with its sources, and a
real export request to real OTLP receivers (reachable, down, refusing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import grpc
import pytest

from otel_asyncres.cli import main
from otel_asyncres.config import OPTIONS
from otlp_receivers import GrpcReceiver, HttpReceiver, Receiver, child_env, free_port

RECEIVERS: dict[str, Callable[[], Receiver]] = {"grpc": GrpcReceiver, "http/protobuf": HttpReceiver}
#: What each receiver answers when told to refuse: not worth a retry.
REFUSALS: dict[str, tuple[object, str]] = {
    "grpc": (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
    "http/protobuf": (401, "401"),
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """This process's environment without any OTEL_* variable from outside."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    yield monkeypatch


@pytest.fixture(params=list(RECEIVERS))
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    with RECEIVERS[request.param]() as r:
        yield r


def check(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, list[str], str]:
    """Exit status, stdout lines and stderr of ``otel-asyncres check flags...``."""
    status = main(["check", *flags])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def table(lines: list[str]) -> dict[str, tuple[str, str]]:
    """The settings printed: name -> (value, source)."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines if line.startswith("  ")]
    return {name: (value, source) for name, value, source in rows}


def test_reachable_endpoint(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], receiver: Receiver
) -> None:
    env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", receiver.protocol)
    status, lines, err = check(capsys, "--endpoint", receiver.endpoint)
    assert (status, err) == (0, "")
    assert lines[-1].startswith(f"otlp: {receiver.traces_endpoint} ({receiver.protocol}): reachable"), lines
    # One real export request, with no spans in it.
    assert len(receiver.requests) == 1 and receiver.span_count() == 0
    settings = table(lines)
    assert settings["exporter"] == ("otlp", "default (an endpoint is set)")
    assert settings["endpoint"] == (receiver.traces_endpoint, "flag --endpoint")
    assert settings["protocol"] == (receiver.protocol, "environment OTEL_EXPORTER_OTLP_PROTOCOL")


def check_command(*flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``otel-asyncres check`` in a process of its own, as a user runs it (the
    SDK logs a repeated complaint once per 20 s per process: the reason of a
    second failure in this process would go unsaid)."""
    return subprocess.run(
        [sys.executable, "-m", "otel_asyncres", "check", *flags],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("protocol", list(RECEIVERS))
def test_endpoint_down(protocol: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = check_command("--endpoint", endpoint, "--protocol", protocol, "--timeout", "1")
    assert (result.returncode, result.stderr) == (1, "")
    last = result.stdout.splitlines()[-1]
    prefix = (
        f"otlp: {endpoint}{'/v1/traces' if protocol == 'http/protobuf' else ''} ({protocol}): export failed: "
    )
    assert last.startswith(prefix), last
    assert "refused" in last.lower() or "UNAVAILABLE" in last, last


def test_endpoint_refusing(receiver: Receiver) -> None:
    receiver.fail_with, said = REFUSALS[receiver.protocol]
    result = check_command("--endpoint", receiver.endpoint, "--protocol", receiver.protocol)
    assert result.returncode == 1
    last = result.stdout.splitlines()[-1]
    assert "export failed: " in last and said in last, last
    assert receiver.rejected == 1


def test_every_setting_with_its_source(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces.example:4317")
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base.example:4317")  # loses to the one above
    env.setenv("OTEL_ASYNCRES_MIN_WAIT_DURATION", "5ms")
    env.setenv("OTEL_ASYNCRES_DETAIL", "tasks")  # loses to the flag
    env.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=billing,team=a")
    status, lines, err = check(capsys, "--exporter", "none", "--detail", "all", "--window-duration", "1m")
    assert (status, err) == (0, "")
    settings = table(lines)
    assert settings["exporter"] == ("none", "flag --exporter")
    assert settings["endpoint"] == (
        "http://traces.example:4317",
        "environment OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    )
    assert settings["protocol"] == ("grpc", "default")
    assert settings["service_name"] == ("billing", "environment OTEL_RESOURCE_ATTRIBUTES")
    assert settings["detail"] == ("all", "flag --detail")
    assert settings["min_wait_duration"] == ("5ms", "environment OTEL_ASYNCRES_MIN_WAIT_DURATION")
    assert settings["window_duration"] == ("1m", "flag --window-duration")
    assert settings["min_task_duration"] == ("0", "default")
    assert settings["budget"] == ("2000", "default")
    assert settings["OTEL_SDK_DISABLED"] == ("false", "default")
    assert set(settings) >= {option.name for option in OPTIONS}
    assert lines[-1] == "otlp: not used (exporter: none); nothing to reach"


def test_service_name_sources(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert table(check(capsys)[1])["service_name"] == ("(the program's name)", "default")
    env.setenv("OTEL_SERVICE_NAME", "payments")
    assert table(check(capsys)[1])["service_name"] == ("payments", "environment OTEL_SERVICE_NAME")
    assert table(check(capsys, "--service-name", "api")[1])["service_name"] == ("api", "flag --service-name")


@pytest.mark.parametrize(
    "flags, variables, culprit",
    [
        (["--detail", "everything"], {}, "detail='everything'"),
        ([], {"OTEL_ASYNCRES_MIN_TASK_DURATION": "soon"}, "OTEL_ASYNCRES_MIN_TASK_DURATION='soon'"),
        ([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"}, "localhost:4317"),
        ([], {"OTEL_SDK_DISABLED": "1"}, "OTEL_SDK_DISABLED='1'"),
        ([], {"OTEL_TRACES_SAMPLER": "bogus"}, "OTEL_TRACES_SAMPLER='bogus'"),
    ],
)
def test_bad_configuration_is_status_2(
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    variables: dict[str, str],
    culprit: str,
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    status, lines, err = check(capsys, *flags)
    assert (status, lines) == (2, [])
    (line,) = err.splitlines()
    assert line.startswith("otel-asyncres: error: ") and culprit in line, line


def test_sdk_disabled_is_said_and_nothing_is_sent(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("OTEL_SDK_DISABLED", "true")
    with GrpcReceiver() as receiver:
        status, lines, _ = check(capsys, "--endpoint", receiver.endpoint)
        assert receiver.requests == []
    assert status == 0
    assert table(lines)["OTEL_SDK_DISABLED"] == ("true", "environment OTEL_SDK_DISABLED")
    assert lines[-1].startswith("off: OTEL_SDK_DISABLED=true")


def test_as_a_command() -> None:
    with HttpReceiver() as receiver:
        result = check_command(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf"
        )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.splitlines()[-1].startswith(
        f"otlp: {receiver.traces_endpoint} (http/protobuf): reachable"
    )
