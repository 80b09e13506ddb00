"""Start-up hook of programs run by ``otel-asyncres run``.

The command line execs Python with this directory first on PYTHONPATH, so
Python imports this module at start-up, before the program. It instruments
the process, removes every trace of itself from ``sys.path`` and the
environment (the program and its child processes see what they would see
under plain ``python``), then hands over to any other ``sitecustomize`` this
one shadowed.
"""

import os
import sys


def _start() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    from otel_asyncres.launch import forget_bootstrap, run_shadowed_sitecustomize, start_in_program

    forget_bootstrap(here)
    start_in_program()
    run_shadowed_sitecustomize(here)


_start()
