"""``otel-asyncres run``: run any Python program instrumented, as ``python`` would.

The program gets the same ``sys.argv``, ``__main__`` and ``sys.path[0]`` as
under ``python script.py`` or ``python -m module``; its exit code, and its
uncaught exception with the traceback Python would print, pass through. The
spans recorded so far are exported on every way out: normal exit, an uncaught
exception, ``sys.exit``, SIGINT (KeyboardInterrupt) and SIGTERM. A bad option
is one line on stderr and exit status 2, before the program starts.
"""

from __future__ import annotations

import argparse
import builtins
import importlib.machinery
import io
import os
import runpy
import signal
import sys
import types
import zipfile
from collections.abc import Sequence
from types import FrameType, TracebackType
from typing import Any, NoReturn

from .config import EXPORTERS, OP_PARENTS, PROTOCOLS, ConfigError, load_settings
from .session import Session, activate, uninstrument
from .version import __version__

_PROG = "otel-asyncres"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Tokio-style runtime instrumentation for asyncio programs, exported to OpenTelemetry.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    run = commands.add_parser(
        "run",
        help="run a Python program instrumented",
        description="Run a script or module instrumented. Without configuration the console view is "
        "printed on stderr at exit; set OTEL_EXPORTER_OTLP_ENDPOINT (or --endpoint) to export over OTLP.",
        usage=f"{_PROG} run [options] (script.py | -m module) [args ...]",
    )
    run.add_argument("--exporter", help=f"OTEL_TRACES_EXPORTER: {', '.join(EXPORTERS)} (comma-separated)")
    run.add_argument("--endpoint", help="OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://localhost:4317")
    run.add_argument("--protocol", help=f"OTEL_EXPORTER_OTLP_PROTOCOL: {', '.join(PROTOCOLS)}")
    run.add_argument("--service-name", help="OTEL_SERVICE_NAME (default: the program's name)")
    run.add_argument("--op-parent", help=f"OTEL_ASYNCRES_OP_PARENT: {', '.join(OP_PARENTS)}")
    run.add_argument("--op-poll-spans", help="OTEL_ASYNCRES_OP_POLL_SPANS: true or false")
    run.add_argument("-m", dest="module", help="run a library module as a script, like python -m")
    run.add_argument("script", nargs="?", help="the script to run; what follows it is its arguments")
    return parser


#: Options of ``run`` that take a value, so the value is not taken for the script.
_VALUED = {"--exporter", "--endpoint", "--protocol", "--service-name", "--op-parent", "--op-poll-spans"}


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split at the program: our options come before the script (or ``-m
    module``); everything after it belongs to the program, ``--help`` included."""
    if not argv or argv[0] != "run":
        return argv, []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[:i] + argv[i + 1 : i + 2], argv[i + 2 :]
        if arg == "-m":
            return argv[: i + 2], argv[i + 2 :]
        if arg.startswith("-m") and not arg.startswith("--"):
            return argv[: i + 1], argv[i + 1 :]
        if not arg.startswith("-"):
            return argv[: i + 1], argv[i + 1 :]
        i += 2 if arg in _VALUED else 1
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    ours, program_args = _split(list(sys.argv[1:] if argv is None else argv))
    args = _parser().parse_args(ours)
    target = ("module", args.module) if args.module else ("script", args.script) if args.script else None
    if target is None:
        print(f"{_PROG} run: error: give a script to run, or -m module", file=sys.stderr)
        return 2
    options = {
        "exporter": args.exporter,
        "endpoint": args.endpoint,
        "protocol": args.protocol,
        "service_name": args.service_name,
        "op_parent": args.op_parent,
        "op_poll_spans": args.op_poll_spans,
    }
    try:
        settings = load_settings(options)
    except ConfigError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    kind, name = target
    if kind == "script" and not os.path.exists(name):
        print(f"{_PROG}: can't open file {os.path.abspath(name)!r}: no such file", file=sys.stderr)
        return 2
    default_name = os.path.splitext(os.path.basename(name))[0] if kind == "script" else name
    activate(Session(settings, default_service_name=default_name))
    _flush_on_sigterm()
    return _run(kind, name, program_args)


def _run(kind: str, name: str, program_args: list[str]) -> int:
    """Run the program as __main__; return its exit status."""
    try:
        sys.argv = [name, *program_args]
        if kind == "script":
            _run_script(name)
        else:
            sys.path[0] = os.getcwd()
            runpy.run_module(name, run_name="__main__", alter_sys=True)  # sets argv[0] to the path
    except SystemExit:
        uninstrument()
        raise
    except KeyboardInterrupt as exc:
        _print_uncaught(exc)
        uninstrument()
        _die_by(signal.SIGINT)
    except ImportError as exc:
        uninstrument()
        if kind == "module" and _raised_by_import_machinery(exc.__traceback__):
            # What ``python -m`` says when the module cannot be found.
            print(f"{sys.executable}: {exc}", file=sys.stderr)
        else:
            _print_uncaught(exc)
        return 1
    except BaseException as exc:
        _print_uncaught(exc)
        uninstrument()
        return 1
    uninstrument()
    return 0


def _run_script(path: str) -> None:
    """Run a script the way ``python path`` does: ``__main__`` gets an
    absolute (unnormalised) ``__file__``, a SourceFileLoader, no package and
    no spec, and stays in sys.modules afterwards; sys.path[0] is the
    script's real directory. Directories and zip files go through runpy,
    which is what Python itself uses for them."""
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    if os.path.isdir(path) or zipfile.is_zipfile(path):
        runpy.run_path(path, run_name="__main__")
        return
    filename = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    main = types.ModuleType("__main__")
    loader = importlib.machinery.SourceFileLoader("__main__", filename)
    main.__dict__.update(__file__=filename, __cached__=None, __loader__=loader, __builtins__=builtins)
    sys.modules["__main__"] = main
    with io.open_code(filename) as source:
        code = compile(source.read(), filename, "exec")
    exec(code, main.__dict__)


def _is_launcher(tb: TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    return filename == __file__ or filename in (runpy.__file__, "<frozen runpy>")


def _raised_by_import_machinery(tb: TracebackType | None) -> bool:
    """True when no frame of the program itself is in the traceback."""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (_is_launcher(tb) or filename.startswith("<frozen importlib") or "importlib" in filename):
            return False
        tb = tb.tb_next
    return True


def _print_uncaught(exc: BaseException) -> None:
    """Print the traceback Python would print: without this launcher's frames."""
    tb = exc.__traceback__
    while tb is not None and _is_launcher(tb):
        tb = tb.tb_next
    sys.excepthook(type(exc), exc.with_traceback(tb), tb)


def _die_by(signum: int) -> NoReturn:
    """End the process by ``signum``, as Python does for an uncaught
    KeyboardInterrupt: the parent sees the same wait status."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # not reached where the signal is fatal


def _flush_on_sigterm() -> None:
    """SIGTERM's default is to die without running any Python code; when the
    program has not claimed SIGTERM, export first, then die the same way."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> Any:
        uninstrument()
        _die_by(signum)

    signal.signal(signal.SIGTERM, on_sigterm)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
