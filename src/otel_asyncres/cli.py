"""``otel-asyncres run``: run any Python program instrumented, as ``python`` would.

The command line only parses and validates: a bad option is one line on
stderr and exit status 2, before the program starts. Then ``launch`` execs
Python itself on the program (see there), so argv, ``__main__``, exit codes
and tracebacks are exactly Python's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .config import EXPORTERS, OPTION_NAMES, OPTIONS, PROTOCOLS, ConfigError, load_settings
from .launch import exec_program
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
    for option in OPTIONS:
        run.add_argument(option.flag, dest=option.name, help=f"{option.env}: {option.help}")
    run.add_argument("-m", dest="module", help="run a library module as a script, like python -m")
    run.add_argument("script", nargs="?", help="the script to run; what follows it is its arguments")
    return parser


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
    if not (args.module or args.script):
        print(f"{_PROG} run: error: give a script to run, or -m module", file=sys.stderr)
        return 2
    options = {name: getattr(args, name) for name in OPTION_NAMES}
    try:
        settings = load_settings(options)
    except ConfigError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.module:
        target, default_name = ["-m", args.module], args.module
    else:
        target = [args.script]
        default_name = os.path.splitext(os.path.basename(args.script))[0]
    exec_program(settings, options, [*target, *program_args], default_name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
