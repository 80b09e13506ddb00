"""``otel-asyncres run``: run any Python program instrumented, as ``python`` would;
``otel-asyncres check``: what configuration is in effect, and whether the OTLP
endpoint takes exports.

The command line only parses and validates: a bad option is one line on
stderr and exit status 2, before the program starts. Then ``launch`` execs
Python itself on the program (see there), so argv, ``__main__``, exit codes
and tracebacks are exactly Python's. With OTEL_SDK_DISABLED=true the program
is run plain, as ``python`` alone would run it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import check
from .config import EXPORTERS, OPTION_NAMES, OPTIONS, PROTOCOLS, ConfigError, load_settings, sdk_disabled
from .launch import exec_plain, exec_program
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
    _add_settings(run)
    run.add_argument("-m", dest="module", help="run a library module as a script, like python -m")
    run.add_argument("script", nargs="?", help="the script to run; what follows it is its arguments")
    checking = commands.add_parser(
        "check",
        help="show the configuration in effect and whether the OTLP endpoint is reachable",
        description="Print every setting run would use, its value and where it came from (flag, "
        "environment or default), then send the OTLP endpoint an empty export request. Exit status: "
        "0 all is well, 1 the endpoint did not take the export, 2 bad configuration.",
    )
    _add_settings(checking)
    checking.add_argument(
        "--timeout",
        type=_seconds,
        default=check.DEFAULT_TIMEOUT,
        help=f"seconds the export request may take, retries included (default {check.DEFAULT_TIMEOUT:g})",
    )
    return parser


def _add_settings(command: argparse.ArgumentParser) -> None:
    """The settings, the same for every command (and for instrument())."""
    command.add_argument("--exporter", help=f"OTEL_TRACES_EXPORTER: {', '.join(EXPORTERS)} (comma-separated)")
    command.add_argument("--endpoint", help="OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://localhost:4317")
    command.add_argument("--protocol", help=f"OTEL_EXPORTER_OTLP_PROTOCOL: {', '.join(PROTOCOLS)}")
    command.add_argument("--service-name", help="OTEL_SERVICE_NAME (default: the program's name)")
    for option in OPTIONS:
        command.add_argument(option.flag, dest=option.name, help=f"{option.env}: {option.help}")


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return seconds


#: Options of ``run`` that take a value, so the value is not taken for the script.
_VALUED = {"--exporter", "--endpoint", "--protocol", "--service-name", *(o.flag for o in OPTIONS)}


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
    options = {name: getattr(args, name) for name in OPTION_NAMES}
    try:
        if args.command == "check":
            return check.report(options, sys.stdout, args.timeout)
        _run(args, options, program_args)
    except ConfigError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, options: dict[str, Any], program_args: list[str]) -> NoReturn:
    """Exec the program (or exit with status 2 on a usage error)."""
    if not (args.module or args.script):
        print(f"{_PROG} run: error: give a script to run, or -m module", file=sys.stderr)
        raise SystemExit(2)
    disabled = sdk_disabled()
    settings = None if disabled else load_settings(options)
    if args.module:
        target, default_name = ["-m", args.module], args.module
    else:
        target = [args.script]
        default_name = os.path.splitext(os.path.basename(args.script))[0]
    if settings is None:
        exec_plain([*target, *program_args])
    exec_program(settings, options, [*target, *program_args], default_name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
