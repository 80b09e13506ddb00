"""Both halves of ``otel-asyncres run``: the launcher, and the start-up code
that runs inside the launched program.

The launcher validates the configuration (a mistake is one line and exit
status 2, before anything runs), then execs the same Python on the program
with a ``sitecustomize`` bootstrap in front. So the program runs *as* ``python
script.py`` or ``python -m module``: same process, argv, ``__main__``,
``sys.path``, stacks, tracebacks and exit status, because it is Python doing
all of it. Inside, the bootstrap instruments the process; spans are exported
at exit (``atexit``: normal exit, uncaught exception, ``sys.exit``,
KeyboardInterrupt) and on SIGTERM, whose default would end the process
without running any exit code.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any, NoReturn

from .config import Settings, load_settings

#: Environment variables through which the launcher talks to the bootstrap;
#: the bootstrap removes them, so the program never sees them.
OPTIONS_VAR = "_OTEL_ASYNCRES_RUN_OPTIONS"
PATH_VAR = "_OTEL_ASYNCRES_RUN_PATH"
_BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")


def exec_program(
    settings: Settings, options: Mapping[str, Any], target: list[str], default_service_name: str
) -> NoReturn:
    """Replace this process with ``python <target...>``, instrumented."""
    env = dict(os.environ)
    env[OPTIONS_VAR] = json.dumps({**options, "_default_service_name": default_service_name})
    previous = env.get("PYTHONPATH")
    env[PATH_VAR] = "" if previous is None else "=" + previous
    env["PYTHONPATH"] = _BOOTSTRAP_DIR if not previous else _BOOTSTRAP_DIR + os.pathsep + previous
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *target], env)


def exec_plain(target: list[str]) -> NoReturn:
    """Replace this process with ``python <target...>`` and nothing else: with
    OTEL_SDK_DISABLED=true, ``run`` must be plain ``python``."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *target])


def forget_bootstrap(here: str) -> None:
    """Give the environment back as it was before the launcher touched it."""
    saved = os.environ.pop(PATH_VAR, None)
    if saved is None:
        return
    if saved.startswith("="):
        os.environ["PYTHONPATH"] = saved[1:]
    else:
        os.environ.pop("PYTHONPATH", None)


def start_in_program() -> None:
    """Instrument this process with the launcher's options."""
    raw = os.environ.pop(OPTIONS_VAR, None)
    if raw is None:
        return
    from .session import Session, activate  # the launcher, which only execs, needs none of it

    options = json.loads(raw)
    default_name = options.pop("_default_service_name", None)
    try:
        settings = load_settings(options)
    except ValueError as exc:  # validated by the launcher: only a changed environment
        print(f"otel-asyncres: not instrumenting: {exc}", file=sys.stderr)
        return
    activate(Session(settings, default_service_name=default_name))
    _flush_on_sigterm()


def run_shadowed_sitecustomize(here: str) -> None:
    """Run the ``sitecustomize`` Python would have imported without ours."""
    path = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _flush_on_sigterm() -> None:
    """SIGTERM's default is to die without running any Python code; when the
    program has not claimed SIGTERM, export first, then die the same way."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    from .session import uninstrument

    def on_sigterm(signum: int, frame: FrameType | None) -> Any:
        uninstrument()
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)
