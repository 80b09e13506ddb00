"""Which build of the loop-side hot path is loaded: compiled or pure Python.

The hot modules (``HOT_MODULES``) are compiled by Cython, in pure-Python
mode, from their unchanged ``.py`` sources when the package is built where a
C compiler exists (setup.py); the sources stay the fallback. They are loaded
all compiled or all from source, never mixed (frames.py counts this
package's frames, which compiled functions do not have):

- ``OTEL_ASYNCRES_PURE_PYTHON=1`` at build time builds nothing, and at import
  time loads the sources even where the compiled modules are installed;
- in a source checkout (an editable install), a compiled module older than
  its source is stale: the sources are loaded, as if nothing were compiled,
  until the next build (``pip install -e .`` again).

``otel_asyncres.COMPILED`` says which build was loaded, ``REASON`` why.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import FunctionType, ModuleType

#: The compiled modules, relative to the package.
HOT_MODULES = (
    "instrumentation.hooks",
    "instrumentation.tasks",
    "instrumentation.task_state",
    "instrumentation.waits",
    "instrumentation.joins",
    "instrumentation.spawns",
    "instrumentation.frames",
    "showing",
    "model",
    "diagnostics.lints",
    "diagnostics.deadlocks",
)

PURE_ENV = "OTEL_ASYNCRES_PURE_PYTHON"

_PACKAGE = __name__.rpartition(".")[0]
_DIR = os.path.dirname(os.path.abspath(__file__))


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _paths(module: str) -> tuple[str, list[str]]:
    """A hot module's source, and the compiled files that sit beside it."""
    base = os.path.join(_DIR, *module.split("."))
    compiled = [base + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    return base + ".py", [path for path in compiled if os.path.exists(path)]


def _in_source_checkout() -> bool:
    return os.path.exists(os.path.join(os.path.dirname(os.path.dirname(_DIR)), "pyproject.toml"))


def _stale() -> str | None:
    """Why the compiled modules are not to be loaded (in a source checkout):
    one missing, or older than its source; None if they are all current."""
    for module in HOT_MODULES:
        source, compiled = _paths(module)
        if not compiled:
            return f"{module} is not compiled"
        if os.path.getmtime(compiled[0]) < os.path.getmtime(source):
            return f"{module} is compiled from an older source"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the hot modules' ``.py`` sources ahead of their compiled builds."""

    def __init__(self) -> None:
        self.names = {f"{_PACKAGE}.{module}": _paths(module)[0] for module in HOT_MODULES}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.names.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


_reason: str | None = None


def select() -> None:
    """Make the sources load instead of the compiled modules where those are
    not to be used (run on import, before the package imports a hot module)."""
    global _reason
    if any(isinstance(finder, _SourceFinder) for finder in sys.meta_path):
        return
    if not any(_paths(module)[1] for module in HOT_MODULES):
        _reason = "not compiled"
        return
    if pure_requested():
        _reason = f"{PURE_ENV} is set"
    elif _in_source_checkout():
        _reason = _stale()
    if _reason is not None:
        sys.meta_path.insert(0, _SourceFinder())


def loaded() -> tuple[bool, str]:
    """Whether the hot path runs compiled, and why (or why not)."""
    from .instrumentation import frames

    if not isinstance(frames.user_location, FunctionType):
        return True, "compiled (Cython)"
    return False, f"pure Python ({_reason or 'the sources were loaded'})"


if __package__:  # imported by the package (setup.py imports this file alone)
    select()
