"""What ``otel-asyncres run`` imports (issue 11, start-up): the console default
loads no OTLP exporter, gRPC, protobuf or metrics SDK, and the launcher none of
the instrumentation or the SDK; an OTLP configuration still imports what it
needs and exports. Times are measured by ``benchmarks/startup.py``, never here."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otlp_receivers import GrpcReceiver, HttpReceiver, Receiver, child_env

CLI = [sys.executable, "-m", "otel_asyncres", "run"]

#: Loaded only to export over OTLP (module name prefixes).
OTLP_ONLY = (
    "grpc",
    "google.protobuf",
    "opentelemetry.exporter.otlp",
    "opentelemetry.proto",
    "opentelemetry.sdk.metrics",
)

#: An empty program that, at exit, does what exit does next (uninstrument:
#: export, print the console view), then writes the modules loaded to argv[1].
PROGRAM = """\
    import asyncio
    import atexit
    import json
    import sys


    async def main():
        await asyncio.sleep(0)


    def modules_at_exit():
        import otel_asyncres

        otel_asyncres.uninstrument()
        with open(sys.argv[1], "w") as out:
            json.dump(sorted(sys.modules), out)


    atexit.register(modules_at_exit)
    asyncio.run(main())
"""


def loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def run_program(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    script = tmp_path / "empty.py"
    script.write_text(textwrap.dedent(PROGRAM))
    modules = tmp_path / "modules.json"
    result = subprocess.run(
        [*CLI, str(script), str(modules)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result, json.loads(modules.read_text())


def test_the_console_default_imports_nothing_of_otlp(tmp_path: Path) -> None:
    result, modules = run_program(tmp_path, child_env())
    assert "task main" in result.stderr  # the console view was printed
    assert "otel_asyncres.session" in modules  # and it was instrumented
    assert loaded(modules, OTLP_ONLY) == []


def test_the_console_exporter_named_imports_nothing_of_otlp(tmp_path: Path) -> None:
    env = child_env(OTEL_TRACES_EXPORTER="console", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    result, modules = run_program(tmp_path, env)
    assert "task main" in result.stderr
    assert loaded(modules, OTLP_ONLY) == []


@pytest.mark.parametrize(
    ("receiver_kind", "exporter"),
    [
        (GrpcReceiver, "opentelemetry.exporter.otlp.proto.grpc"),
        (HttpReceiver, "opentelemetry.exporter.otlp.proto.http"),
    ],
    ids=["grpc", "http"],
)
def test_otlp_still_imports_and_exports(tmp_path: Path, receiver_kind: type[Receiver], exporter: str) -> None:
    with receiver_kind() as receiver:
        env = child_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
            OTEL_ASYNCRES_MIN_TASK_DURATION="0",
        )
        result, modules = run_program(tmp_path, env)
        assert receiver.wait_for(1, timeout=10), result.stderr
        names = {span.name for span in receiver.spans()}
        metrics = receiver.metrics()
    assert "task main" in names, names
    assert metrics, "the runtime metrics were not exported beside the traces"
    assert loaded(modules, (exporter,)), modules
    assert loaded(modules, ("opentelemetry.sdk.metrics", "google.protobuf")), modules
    assert "task main" not in result.stderr  # no console view


def imported_by(code: str) -> list[str]:
    """The modules loaded after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.splitlines()[-1]))


def test_the_launcher_imports_neither_the_instrumentation_nor_opentelemetry() -> None:
    modules = imported_by("import otel_asyncres.cli")
    assert loaded(modules, ("opentelemetry", "grpc", "google.protobuf")) == []
    heavy = ("otel_asyncres.session", "otel_asyncres.instrumentation", "otel_asyncres.bridge")
    assert loaded(modules, heavy) == []


def test_the_public_names_are_there_when_asked_for() -> None:
    code = textwrap.dedent(
        """\
        import otel_asyncres
        from otel_asyncres import *
        from otel_asyncres.session import instrument as from_session
        assert instrument is from_session is otel_asyncres.instrument
        from otel_asyncres.custom import Operation as operation, Resource as resource
        from otel_asyncres.diagnostics import Deadlock as deadlock, DeadlockedTask as deadlocked_task
        assert (Operation, Resource) == (operation, resource)
        assert (Deadlock, DeadlockedTask) == (deadlock, deadlocked_task)
        assert all(getattr(otel_asyncres, name) is not None for name in otel_asyncres.__all__)
        assert callable(flush) and callable(uninstrument) and issubclass(ConfigError, ValueError)
        try:
            otel_asyncres.no_such_name
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        else:
            raise AssertionError("otel_asyncres.no_such_name did not raise")
        """
    )
    modules = imported_by(code)
    assert "otel_asyncres.session" in modules


def test_a_name_first_used_in_a_coroutine() -> None:
    """Imported on first use, a name may be first used on a loop: importing the
    instrumentation then must not need to run a loop of its own on that thread."""
    code = textwrap.dedent(
        """\
        import asyncio
        import otel_asyncres

        async def main():
            from otel_asyncres import Operation
            resource = otel_asyncres.Resource("pool", kind="example")
            assert Operation is not None and resource is not None
            return asyncio.current_task().get_name()

        assert asyncio.run(main()) == "Task-1"
        """
    )
    assert "otel_asyncres.custom" in imported_by(code)
