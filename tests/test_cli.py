"""``otel-asyncres run`` as a user runs it: in a subprocess, compared with
plain ``python`` wherever python has something to say (argv, __main__,
sys.path[0], exit status, tracebacks, death by signal)."""

from __future__ import annotations

import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otlp_receivers import (
    GrpcReceiver,
    HttpReceiver,
    ReceivedSpan,
    Receiver,
    attributes,
    child_env,
    free_port,
)

ROOT = Path(__file__).resolve().parent.parent
ONESHOT = ROOT / "examples" / "oneshot.py"
TIMEOUT = 60  # seconds: a hang fails the test instead of the whole run
CLI = [sys.executable, "-m", "otel_asyncres", "run"]
PLAIN = [sys.executable]
ANSI = "\x1b["


def run(
    argv: Sequence[str], cwd: Path | str = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        cwd=cwd,
        env=child_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def same_as_python(plain: subprocess.CompletedProcess[str], ours: subprocess.CompletedProcess[str]) -> None:
    assert ours.stdout == plain.stdout
    assert ours.stderr == plain.stderr
    assert ours.returncode == plain.returncode


def spans_named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = spans_named(spans, name)
    assert len(found) == 1, f"expected one {name!r} in {[s.name for s in spans]}"
    return found[0]


SUMMARY = re.compile(r"otel-asyncres: (\d+) spans exported to \S+ \((grpc|http/protobuf)\)\Z")


def exported(stderr: str, receiver: Receiver) -> list[ReceivedSpan]:
    """The spans the summary line on stderr says went out, once arrived."""
    matches = [m for line in stderr.splitlines() if (m := SUMMARY.match(line))]
    assert len(matches) == 1, f"expected one summary line on stderr:\n{stderr}"
    count = int(matches[0][1])
    assert receiver.wait_for(count, timeout=10), f"{receiver.span_count()} of {count} spans arrived"
    return receiver.spans()


def otlp_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    """Exporting to the receiver, with every task and wait shown: these tests
    check what is flushed, with programs whose tasks are brief."""
    return child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
        OTEL_ASYNCRES_MIN_TASK_DURATION="0",
        OTEL_ASYNCRES_MIN_WAIT_DURATION="0",
        **extra,
    )


# -- the program sees what python would give it ---------------------------------------

SHOW = """\
    import json
    import sys

    import sibling

    print(json.dumps({
        "argv": sys.argv,
        "name": __name__,
        "path0": sys.path[0],
        "sibling": sibling.VALUE,
    }))
"""


@pytest.fixture
def show_script(tmp_path: Path) -> Path:
    write(tmp_path / "prog" / "sibling.py", "VALUE = 'from the script directory'\n")
    (tmp_path / "elsewhere").mkdir()
    return write(tmp_path / "prog" / "show.py", SHOW)


PROGRAM_ARGS = ["--help", "--exporter", "bogus", "-m", "x", "--", "--endpoint=ftp://x", "plain"]


@pytest.mark.parametrize("how", ["absolute", "relative", "double-dash"])
def test_argv_name_and_path0_like_python(show_script: Path, how: str) -> None:
    """Arguments that look like ours, after the script, are the program's."""
    cwd = show_script.parent.parent / "elsewhere"
    script = str(show_script) if how != "relative" else os.path.relpath(show_script, cwd)
    ours_prefix = ["--exporter", "none", "--"] if how == "double-dash" else ["--exporter", "none"]
    plain = run([*PLAIN, script, *PROGRAM_ARGS], cwd=cwd)
    ours = run([*CLI, *ours_prefix, script, *PROGRAM_ARGS], cwd=cwd)
    same_as_python(plain, ours)
    seen = json.loads(ours.stdout)
    assert seen["argv"] == [script, *PROGRAM_ARGS]
    assert seen["name"] == "__main__"
    assert seen["path0"] == str(show_script.parent)
    assert seen["sibling"] == "from the script directory"


def test_argv_passthrough_with_console_view(show_script: Path) -> None:
    """With the default console view stdout is still the program's alone."""
    plain = run([*PLAIN, str(show_script), *PROGRAM_ARGS])
    ours = run([*CLI, str(show_script), *PROGRAM_ARGS])
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == plain.stdout


MAIN_GLOBALS = """\
    import json
    import sys

    print(json.dumps({
        "file": __file__,
        "package": __package__,
        "spec": repr(__spec__),
        "loader": type(globals().get("__loader__")).__name__,
        "cached": repr(globals().get("__cached__", "absent")),
        "main_is_globals": sys.modules["__main__"].__dict__ is globals(),
        "code_filename": sys._getframe().f_code.co_filename,
    }))
"""


def main_globals(tmp_path: Path, how: str) -> tuple[dict[str, object], dict[str, object]]:
    """What __main__'s globals are under python and under us."""
    script = write(tmp_path / "prog" / "globals.py", MAIN_GLOBALS)
    cwd = tmp_path / "prog" if how == "relative" else tmp_path
    name = script.name if how == "relative" else str(script)
    plain = json.loads(run([*PLAIN, name], cwd=cwd).stdout)
    ours = json.loads(run([*CLI, "--exporter", "none", name], cwd=cwd).stdout)
    return plain, ours


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_dunder_file_like_python(tmp_path: Path, how: str) -> None:
    """__file__ and the code's filename are absolute even for a relative script
    path (Python 3.9+); tracebacks and Path(__file__) after os.chdir rely on it."""
    plain, ours = main_globals(tmp_path, how)
    assert Path(str(plain["file"])).is_absolute()
    assert (ours["file"], ours["code_filename"]) == (plain["file"], plain["code_filename"])


def test_main_module_globals_like_python(tmp_path: Path) -> None:
    """__package__, __spec__, __loader__, __cached__ as python sets them for a script."""
    plain, ours = main_globals(tmp_path, "absolute")
    assert ours == plain


PACKAGE = {
    "mypkg/__init__.py": "",
    "mypkg/helper.py": "VALUE = 'relative import'\n",
    "toplevel.py": "VALUE = 'from the current directory'\n",
    "mypkg/tool.py": """\
        import json
        import sys

        import toplevel

        from . import helper

        print(json.dumps({
            "argv": sys.argv,
            "name": __name__,
            "path0": sys.path[0],
            "file": __file__,
            "package": __package__,
            "spec": __spec__.name,
            "helper": helper.VALUE,
            "toplevel": toplevel.VALUE,
        }))
    """,
    "nomain/__init__.py": "",
    "broken.py": "import asyncio\nimport does_not_exist_anywhere\n",
}


@pytest.fixture
def package_dir(tmp_path: Path) -> Path:
    for name, source in PACKAGE.items():
        write(tmp_path / name, source)
    write(tmp_path / "mypkg" / "__main__.py", PACKAGE["mypkg/tool.py"])
    return tmp_path


@pytest.mark.parametrize("target", [["-m", "mypkg.tool"], ["-mmypkg.tool"], ["-m", "mypkg"]])
def test_module_like_python_dash_m(package_dir: Path, target: list[str]) -> None:
    module = target[-1].removeprefix("-m")
    plain = run([*PLAIN, "-m", module, *PROGRAM_ARGS], cwd=package_dir)
    ours = run([*CLI, "--exporter", "none", *target, *PROGRAM_ARGS], cwd=package_dir)
    same_as_python(plain, ours)
    seen = json.loads(ours.stdout)
    assert seen["argv"][1:] == PROGRAM_ARGS
    assert seen["name"] == "__main__"
    assert seen["path0"] == str(package_dir)
    assert seen["helper"] == "relative import"
    assert seen["toplevel"] == "from the current directory"


@pytest.mark.parametrize("module", ["nonexistent_module_xyz", "mypkg.nonexistent", "nomain"])
def test_module_not_found_like_python(package_dir: Path, module: str) -> None:
    plain = run([*PLAIN, "-m", module], cwd=package_dir)
    ours = run([*CLI, "-m", module], cwd=package_dir)
    assert ours.returncode == 1
    assert "No module named" in ours.stderr
    same_as_python(plain, ours)


def test_module_raising_import_error_shows_traceback(package_dir: Path) -> None:
    """An ImportError from inside the module is the program's: a traceback."""
    plain = run([*PLAIN, "-m", "broken"], cwd=package_dir)
    ours = run([*CLI, "--exporter", "none", "-m", "broken"], cwd=package_dir)
    assert ours.returncode == plain.returncode == 1
    assert ours.stderr.startswith("Traceback (most recent call last):\n")
    assert ours.stderr.endswith("ModuleNotFoundError: No module named 'does_not_exist_anywhere'\n")
    assert ours.stderr == plain.stderr  # runpy's frames included: it is python -m


def test_missing_script(tmp_path: Path) -> None:
    plain = run([*PLAIN, "nope.py"], cwd=tmp_path)
    ours = run([*CLI, "nope.py"], cwd=tmp_path)
    assert ours.returncode == plain.returncode == 2
    assert "nope.py" in ours.stderr and len(ours.stderr.splitlines()) == 1


# -- exit status and uncaught exceptions ------------------------------------------------

EXITS = {
    "normal": ("print('out')", 0),
    "exit-3": ("import sys\nprint('out')\nsys.exit(3)", 3),
    "exit-message": ("import sys\nsys.exit('fatal: no config')", 1),
    "exit-none": ("import sys\nsys.exit()", 0),
    "exit-3-in-task": (
        "import asyncio, sys\n"
        "async def stop():\n    await asyncio.sleep(0)\n    sys.exit(3)\n"
        "async def main():\n    await asyncio.create_task(stop(), name='stopper')\n"
        "asyncio.run(main())",
        3,
    ),
    "exit-message-in-task": (
        "import asyncio, sys\n"
        "async def main():\n    await asyncio.sleep(0)\n    sys.exit('bye from a task')\n"
        "asyncio.run(main())",
        1,
    ),
}


@pytest.mark.parametrize("case", list(EXITS))
def test_exit_status_like_python(tmp_path: Path, case: str) -> None:
    source, status = EXITS[case]
    script = write(tmp_path / "exits.py", source + "\n")
    plain = run([*PLAIN, str(script)])
    ours = run([*CLI, "--exporter", "none", str(script)])
    assert ours.returncode == status
    same_as_python(plain, ours)
    if "message" in case:
        assert ours.stderr.strip().startswith(("fatal", "bye"))


FAILING = """\
    import asyncio


    async def fail():
        await asyncio.sleep(0)
        try:
            {}["key"]
        except KeyError as exc:
            raise ValueError("boom 42") from exc


    async def main():
        print("started", flush=True)
        await asyncio.create_task(fail(), name="failing")


    asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_uncaught_exception_traceback_identical(tmp_path: Path, how: str) -> None:
    script = write(tmp_path / "failing.py", FAILING)
    name = str(script) if how == "absolute" else script.name
    plain = run([*PLAIN, name], cwd=tmp_path)
    ours = run([*CLI, "--exporter", "none", name], cwd=tmp_path)
    assert ours.returncode == 1
    assert "ValueError: boom 42" in ours.stderr
    same_as_python(plain, ours)


def test_uncaught_exception_traceback_before_console_view(tmp_path: Path) -> None:
    script = write(tmp_path / "failing.py", FAILING)
    plain = run([*PLAIN, str(script)])
    ours = run([*CLI, str(script)])
    assert ours.returncode == 1
    assert ours.stdout == plain.stdout
    assert ours.stderr.startswith(plain.stderr), ours.stderr
    assert "task failing" in ours.stderr[len(plain.stderr) :]


def test_module_uncaught_exception_traceback(package_dir: Path) -> None:
    write(package_dir / "failing.py", FAILING)
    plain = run([*PLAIN, "-m", "failing"], cwd=package_dir)
    ours = run([*CLI, "--exporter", "none", "-m", "failing"], cwd=package_dir)
    assert ours.returncode == plain.returncode == 1
    assert ours.stdout == plain.stdout
    assert ours.stderr == plain.stderr  # runpy's frames included: it is python -m


def test_spans_flushed_on_uncaught_exception(tmp_path: Path) -> None:
    script = write(tmp_path / "failing.py", FAILING)
    with GrpcReceiver() as receiver:
        ours = run([*CLI, str(script)], env=otlp_env(receiver))
        plain = run([*PLAIN, str(script)])
        assert ours.returncode == 1
        assert ours.stdout == plain.stdout == "started\n"
        # The traceback, then the summary line.
        assert ours.stderr.startswith(plain.stderr)
        assert len(ours.stderr.splitlines()) == len(plain.stderr.splitlines()) + 1
        spans = exported(ours.stderr, receiver)
    failing = one(spans, "task failing")
    assert failing.span.status.code == failing.span.status.STATUS_CODE_ERROR
    assert "boom 42" in failing.span.status.message
    assert failing.attributes["asyncio.task.outcome"] == "error"
    (event,) = [e for e in failing.span.events if e.name == "exception"]
    attrs = attributes(event.attributes)
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "boom 42"
    assert 'raise ValueError("boom 42") from exc' in attrs["exception.stacktrace"]
    assert "KeyError" in attrs["exception.stacktrace"]  # the cause is kept
    span = failing.span
    assert span.start_time_unix_nano <= event.time_unix_nano <= span.end_time_unix_nano
    main = one(spans, "task main")
    assert main.span.status.code == main.span.status.STATUS_CODE_ERROR


@pytest.mark.parametrize("case", ["exit-3-in-task", "exit-message-in-task"])
def test_spans_flushed_on_sys_exit(tmp_path: Path, case: str) -> None:
    source, status = EXITS[case]
    script = write(tmp_path / "exits.py", source + "\n")
    with GrpcReceiver() as receiver:
        ours = run([*CLI, str(script)], env=otlp_env(receiver))
        assert ours.returncode == status, ours.stderr
        spans = exported(ours.stderr, receiver)
    names = {s.name for s in spans}
    assert "task main" in names
    if case == "exit-3-in-task":
        assert "task stopper" in names
    else:
        assert "bye from a task" in ours.stderr.splitlines()
    assert len({s.span.trace_id for s in spans}) == 1


def test_sys_exit_at_top_level_flushes(tmp_path: Path) -> None:
    script = write(
        tmp_path / "exits.py",
        """\
        import asyncio
        import sys

        async def brief():
            await asyncio.sleep(0)

        async def main():
            await asyncio.create_task(brief(), name="brief")

        asyncio.run(main())
        sys.exit(3)
        """,
    )
    with HttpReceiver() as receiver:
        ours = run([*CLI, str(script)], env=otlp_env(receiver))
        assert ours.returncode == 3, ours.stderr
        spans = exported(ours.stderr, receiver)
    assert {"task main", "task brief"} <= {s.name for s in spans}


# -- signals ------------------------------------------------------------------------

SLEEPER = """\
    import asyncio


    async def sleeper():
        await asyncio.sleep(3600)


    async def main():
        task = asyncio.create_task(sleeper(), name="sleeper")
        await asyncio.sleep(0)
        print("ready", flush=True)
        await task


    asyncio.run(main())
"""


def _default_sigint() -> None:
    """In the child: SIGINT as a terminal delivers it. A shell running the tests
    in the background without job control ignores SIGINT, and Python keeps
    ignoring what it inherited as ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_until_signalled(
    argv: list[str], signum: int, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Start the program, wait for its "ready", send ``signum``, collect."""
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready, "the program never said ready"
        first = proc.stdout.readline()
        assert first == "ready\n", (first, proc.stderr.read() if proc.poll() is not None else "")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, first + out, err)


@pytest.mark.parametrize("receiver_kind", [GrpcReceiver, HttpReceiver], ids=["grpc", "http"])
def test_sigterm_dies_like_python_and_flushes(tmp_path: Path, receiver_kind: type[Receiver]) -> None:
    script = write(tmp_path / "sleeper.py", SLEEPER)
    plain = run_until_signalled([*PLAIN, str(script)], signal.SIGTERM, child_env())
    assert plain.returncode == -signal.SIGTERM
    with receiver_kind() as receiver:
        ours = run_until_signalled([*CLI, str(script)], signal.SIGTERM, otlp_env(receiver))
        assert ours.returncode == -signal.SIGTERM, ours.stderr
        assert ours.stdout == plain.stdout == "ready\n"
        spans = exported(ours.stderr, receiver)
    sleeper = one(spans, "task sleeper")
    assert sleeper.attributes.get("asyncio.unfinished") is True, sleeper.attributes
    assert sleeper.attributes["asyncio.task.polls"] >= 1
    main = one(spans, "task main")
    assert main.attributes.get("asyncio.unfinished") is True, main.attributes
    assert sleeper.span.parent_span_id == main.span.span_id
    for s in spans:
        assert s.span.start_time_unix_nano <= s.span.end_time_unix_nano


def test_sigterm_with_console_view(tmp_path: Path) -> None:
    script = write(tmp_path / "sleeper.py", SLEEPER)
    ours = run_until_signalled([*CLI, str(script)], signal.SIGTERM, child_env())
    assert ours.returncode == -signal.SIGTERM
    assert "task sleeper" in ours.stderr
    assert "unfinished" in ours.stderr


def test_sigint_dies_like_python_and_flushes(tmp_path: Path) -> None:
    script = write(tmp_path / "sleeper.py", SLEEPER)
    plain = run_until_signalled([*PLAIN, str(script)], signal.SIGINT, child_env())
    assert plain.returncode == -signal.SIGINT
    with GrpcReceiver() as receiver:
        ours = run_until_signalled([*CLI, str(script)], signal.SIGINT, otlp_env(receiver))
        assert ours.returncode == -signal.SIGINT, ours.stderr
        assert ours.stdout == plain.stdout == "ready\n"
        spans = exported(ours.stderr, receiver)
    # python's KeyboardInterrupt traceback, then the summary line.
    lines = ours.stderr.splitlines()
    assert lines[0] == plain.stderr.splitlines()[0] == "Traceback (most recent call last):"
    assert lines[-2] == plain.stderr.splitlines()[-1] == "KeyboardInterrupt"
    names = {s.name for s in spans}
    assert {"task main", "task sleeper"} <= names, names
    assert len({s.span.trace_id for s in spans}) == 1


# -- configuration --------------------------------------------------------------------

MARKER_SCRIPT = """\
    from pathlib import Path

    Path(__file__).with_name("ran").touch()
    print("the program ran")
"""

BAD_CONFIG = {
    "exporter-flag": (["--exporter", "bogus"], {}, "bogus"),
    "exporter-env": ([], {"OTEL_TRACES_EXPORTER": "bogus"}, "bogus"),
    "exporter-env-partly": ([], {"OTEL_TRACES_EXPORTER": "otlp,zipkin"}, "zipkin"),
    "endpoint-flag-no-scheme": (["--endpoint", "localhost:4317"], {}, "localhost:4317"),
    "endpoint-env-ftp": ([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://x"}, "ftp://x"),
    "traces-endpoint-env": ([], {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/v1/traces"}, "ftp://x"),
    "endpoint-bad-port": (["--endpoint", "http://127.0.0.1:notaport"], {}, "notaport"),
    "endpoint-no-host": ([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://"}, "http://"),
    "protocol-env": ([], {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
    "traces-protocol-env": ([], {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"}, "udp"),
    "protocol-flag": (["--protocol", "http/json"], {}, "http/json"),
    "op-poll-spans-flag": (["--op-poll-spans", "maybe"], {}, "maybe"),
    "op-poll-spans-env": ([], {"OTEL_ASYNCRES_OP_POLL_SPANS": "maybe"}, "maybe"),
    "op-parent-flag": (["--op-parent", "nobody"], {}, "nobody"),
    "sdk-disabled-env": ([], {"OTEL_SDK_DISABLED": "1"}, "OTEL_SDK_DISABLED='1'"),
    "sampler-env": ([], {"OTEL_TRACES_SAMPLER": "bogus"}, "OTEL_TRACES_SAMPLER='bogus'"),
    "timeout-env": ([], {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "OTEL_EXPORTER_OTLP_TIMEOUT='soon'"),
    "sampler-ratio-env": (
        [],
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
        "OTEL_TRACES_SAMPLER_ARG='2'",
    ),
    "bsp-queue-env": ([], {"OTEL_BSP_MAX_QUEUE_SIZE": "lots"}, "OTEL_BSP_MAX_QUEUE_SIZE='lots'"),
    "bsp-delay-env": ([], {"OTEL_BSP_SCHEDULE_DELAY": "0"}, "OTEL_BSP_SCHEDULE_DELAY='0'"),
    "bsp-batch-env": (
        [],
        {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512"},
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=512",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIG))
def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    flags, env, culprit = BAD_CONFIG[case]
    script = write(tmp_path / "marker.py", MARKER_SCRIPT)
    ours = run([*CLI, *flags, str(script)], env=child_env(**env))
    assert ours.returncode == 2, ours.stderr
    assert not (tmp_path / "ran").exists(), "the program ran despite bad configuration"
    assert ours.stdout == ""
    lines = ours.stderr.splitlines()
    assert len(lines) == 1, ours.stderr
    assert lines[0].startswith("otel-asyncres: error: "), lines[0]
    assert culprit in lines[0]


def test_unknown_option_does_not_run_the_program(tmp_path: Path) -> None:
    script = write(tmp_path / "marker.py", MARKER_SCRIPT)
    ours = run([*CLI, "--no-such-option", str(script)])
    assert ours.returncode == 2
    assert not (tmp_path / "ran").exists()
    assert "--no-such-option" in ours.stderr


def test_good_configuration_runs_the_program(tmp_path: Path) -> None:
    """The control for the cases above: the same script does run."""
    script = write(tmp_path / "marker.py", MARKER_SCRIPT)
    ours = run(
        [*CLI, "--exporter", "none", "--op-poll-spans", "false", "--op-parent", "resource", str(script)]
    )
    assert ours.returncode == 0, ours.stderr
    assert (tmp_path / "ran").exists()
    assert ours.stdout == "the program ran\n"
    assert ours.stderr == ""


@pytest.mark.parametrize(
    "sampler", [{"OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, {}]
)
def test_a_sampler_the_sdk_knows_runs_the_program(tmp_path: Path, sampler: dict[str, str]) -> None:
    """The control for the sampler cases above (names in any case, as the SDK reads them)."""
    script = write(tmp_path / "marker.py", MARKER_SCRIPT)
    ours = run([*CLI, "--exporter", "none", str(script)], env=child_env(**sampler))
    assert ours.returncode == 0, ours.stderr
    assert (tmp_path / "ran").exists()


# -- the default console view, and silence ---------------------------------------------------


def test_default_is_the_console_view_on_stderr() -> None:
    plain = run([*PLAIN, str(ONESHOT)])
    ours = run([*CLI, str(ONESHOT)])
    assert ours.returncode == plain.returncode == 0, ours.stderr
    assert ours.stdout == plain.stdout == "received 5\ngood-bye\n"
    for text in (
        "task tokio-oneshot",
        "task receiver",
        "task sender",
        "resource asyncio.Future",
        "value_sent=true",
        "async_op Future.__await__",
        "waker.wake",
        "waker.clone",
    ):
        assert text in ours.stderr, f"{text!r} not in the console view:\n{ours.stderr}"
    assert ANSI not in ours.stderr  # not a terminal


FOLDING_SCRIPT = """\
    import asyncio

    async def quick(lock, queue, i):
        async with lock:
            await asyncio.sleep(0)
        await queue.put(i)

    async def main():
        lock, queue = asyncio.Lock(), asyncio.Queue()
        await asyncio.gather(*(asyncio.create_task(quick(lock, queue, i), name=f"q{i}") for i in range(300)))
        print(queue.qsize())

    asyncio.run(main())
"""


def test_the_console_says_what_was_folded_and_names_every_task(tmp_path: Path) -> None:
    """Past the budget, the console view says on the parent what was folded
    into it, and a task named by an event always comes with its name (and a
    mark when it has no span of its own)."""
    script = write(tmp_path / "folding.py", FOLDING_SCRIPT)
    ours = run([*CLI, "--budget", "20", str(script)])
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == "300\n"
    (tasks_line,) = re.findall(r"\+ (\d+) tasks folded \(ok (\d+); longest [\d.]+ms\)", ours.stderr)
    shown = len(re.findall(r"task q\d+  #", ours.stderr))
    assert int(tasks_line[0]) == int(tasks_line[1]) == 300 - shown
    assert re.search(r"\+ \d+ waits folded \(", ours.stderr)
    (summary,) = re.findall(r"past the budget, .* tasks? were folded into the span above them.*", ours.stderr)
    assert f"{300 - shown} tasks" in summary, summary
    named = re.findall(r"task #\d+( \([^)]*\))?", ours.stderr)
    assert named and all(label for label in named), "a task id printed without its name"


@pytest.mark.parametrize(
    "flags, env",
    [
        ([], {"OTEL_TRACES_EXPORTER": "none"}),
        (["--exporter", "none"], {}),
        # An endpoint configured but the exporter off: nothing is sent, nothing said.
        ([], {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}),
    ],
    ids=["env", "flag", "endpoint-but-none"],
)
def test_exporter_none_prints_nothing(flags: list[str], env: dict[str, str]) -> None:
    ours = run([*CLI, *flags, str(ONESHOT)], env=child_env(**env))
    assert ours.returncode == 0
    assert ours.stdout == "received 5\ngood-bye\n"
    assert ours.stderr == ""


def test_exporter_none_with_a_closed_port_sends_nothing() -> None:
    port = free_port()
    ours = run(
        [*CLI, str(ONESHOT)],
        env=child_env(OTEL_TRACES_EXPORTER="none", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}"),
    )
    assert (ours.returncode, ours.stderr) == (0, "")


def run_with_tty_stderr(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal; return (status, stdout, stderr)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=slave)
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], TIMEOUT)
            assert ready, "no output and no exit within the timeout"
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        out = proc.stdout.read() if proc.stdout else b""
        status = proc.wait(timeout=TIMEOUT)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return status, out.decode(), b"".join(chunks).decode()


@pytest.mark.parametrize(
    "terminal, env, colored",
    [
        (False, {}, False),
        (False, {"NO_COLOR": "1"}, False),
        (False, {"FORCE_COLOR": "1"}, True),
        (True, {}, True),
        (True, {"NO_COLOR": "1"}, False),
    ],
    ids=["pipe", "pipe-NO_COLOR", "pipe-FORCE_COLOR", "tty", "tty-NO_COLOR"],
)
def test_console_colors(terminal: bool, env: dict[str, str], colored: bool) -> None:
    argv = [*CLI, str(ONESHOT)]
    if terminal:
        status, out, err = run_with_tty_stderr(argv, child_env(**env))
    else:
        result = run(argv, env=child_env(**env))
        status, out, err = result.returncode, result.stdout, result.stderr
    assert status == 0, err
    assert out == "received 5\ngood-bye\n"
    assert "task tokio-oneshot" in re.sub(r"\x1b\[[0-9;]*m", "", err)
    assert (ANSI in err) is colored, err


def test_a_failing_console_view_is_said_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console view renders at exit, inside the provider's shutdown: a
    bug in it is one line on its stream, never an exception out of the
    program's exit (it once was: "Exception ignored in atexit callback")."""
    from otel_asyncres.export import console

    def broken(*args: object, **kwargs: object) -> str:
        raise RecursionError("maximum recursion depth exceeded")

    stream = io.StringIO()
    exporter = console.ConsoleTreeExporter(stream=stream, color=False)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("test").start_span("one").end()
    monkeypatch.setattr(console, "render", broken)
    provider.shutdown()
    assert stream.getvalue() == (
        "otel-asyncres: the console view failed (RecursionError: maximum recursion depth exceeded); "
        "1 spans not shown\n"
    )


def test_the_console_shows_an_entity_once_whatever_its_windows(tmp_path: Path) -> None:
    """A program that runs longer than three windows is one tree, and each
    task in it one node, its windows together (issue 12 item 3): not a node
    per window."""
    script = tmp_path / "long.py"
    script.write_text(
        textwrap.dedent(
            """\
            import asyncio

            async def ticker(lock):
                for _ in range(14):
                    async with lock:
                        await asyncio.sleep(0.05)

            async def main():
                await asyncio.create_task(ticker(asyncio.Lock()), name="ticker")

            asyncio.run(main())
            """
        )
    )
    ours = run([*CLI, "--window-duration", "100ms", str(script)])
    assert ours.returncode == 0, ours.stderr
    lines = ours.stderr.splitlines()
    assert sum(line.startswith("trace ") for line in lines) == 1, ours.stderr
    for task in ("task main", "task ticker"):
        (node,) = [line for line in lines if f"{task}  #" in line]
        windows = re.search(r"(\d+) windows", node)
        assert windows is not None and int(windows[1]) > 3, node
    assert len([line for line in lines if "async_op sleep" in line]) == 14, ours.stderr
