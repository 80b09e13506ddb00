"""The compiled core: the loop-side hot modules, compiled by Cython from their
unchanged ``.py`` sources (pure-Python mode), where a C compiler exists.

Everything else is in pyproject.toml. The build is all or nothing: if Cython
is missing or any module fails to compile, no compiled module is installed
and the package is pure Python (the sources are always installed).
``OTEL_ASYNCRES_PURE_PYTHON=1`` builds nothing. See docs/performance.md,
"Compiled core".
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src", "otel_asyncres"))
from _core import HOT_MODULES, PURE_ENV, pure_requested

sys.path.pop(0)


def _warn(message: str) -> None:
    print(f"otel-asyncres: {message}; installing the pure-Python package", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """build_ext that leaves nothing compiled behind when anything fails."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler (DistutilsPlatformError), a failed compile, ...
            self._discard(exc)

    def build_extensions(self) -> None:
        try:
            super().build_extensions()
        except Exception as exc:
            self._discard(exc)

    def _discard(self, exc: BaseException) -> None:
        _warn(f"the compiled core was not built ({type(exc).__name__}: {exc})")
        for ext in self.extensions:
            path = self.get_ext_fullpath(ext.name)
            if os.path.exists(path):
                os.remove(path)
        self.extensions = []

    def get_outputs(self) -> list[str]:
        return [path for path in super().get_outputs() if os.path.exists(path)]


def _extensions() -> list[Any]:
    if pure_requested():
        print(f"otel-asyncres: {PURE_ENV} is set: pure-Python package", file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn("Cython is not available")
        return []
    modules = [
        Extension(f"otel_asyncres.{name}", [os.path.join("src", "otel_asyncres", *name.split(".")) + ".py"])
        for name in HOT_MODULES
    ]
    try:
        return list(
            cythonize(
                modules,
                compiler_directives={"language_level": 3, "binding": True, "annotation_typing": False},
                build_dir="build/cython",
                quiet=True,
            )
        )
    except Exception as exc:
        _warn(f"Cython failed ({type(exc).__name__}: {exc})")
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
