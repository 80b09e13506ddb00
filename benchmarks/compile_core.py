"""Build a Cython-compiled copy of the package, to measure it (issue 11 item 6).

    python -m benchmarks.compile_core OUT            # needs Cython and a C compiler
    PYTHONPATH=OUT/src python -m benchmarks.hotpath  # the compiled copy, measured
    python -m benchmarks.hotpath                     # the sources, measured

Copies src/otel_asyncres to OUT/src and compiles its loop-side hot modules
there, in place, from their unchanged ``.py`` sources (Cython's pure-Python
mode, annotations ignored so that the semantics stay Python's). The checkout
itself gets nothing compiled. See docs/performance.md, "Compiled core".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence

HOT_MODULES = (
    "instrumentation/hooks",
    "instrumentation/tasks",
    "instrumentation/task_state",
    "instrumentation/waits",
    "instrumentation/joins",
    "instrumentation/spawns",
    "instrumentation/frames",
    "showing",
    "model",
    "diagnostics/lints",
    "diagnostics/deadlocks",
)

_SETUP = """
from setuptools import Extension, setup
from Cython.Build import cythonize

modules = {modules!r}
setup(
    name="otel-asyncres-compiled-core",
    package_dir={{"": "src"}},
    ext_modules=cythonize(
        [
            Extension("otel_asyncres." + m.replace("/", "."), ["src/otel_asyncres/" + m + ".py"])
            for m in modules
        ],
        compiler_directives={{"language_level": 3, "binding": True, "annotation_typing": False}},
        build_dir="build/cython",
        quiet=True,
    ),
)
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="directory for the compiled copy (replaced)")
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(
        os.path.join(root, "src", "otel_asyncres"),
        os.path.join(out, "src", "otel_asyncres"),
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.c"),
    )
    with open(os.path.join(out, "setup.py"), "w") as f:
        f.write(textwrap.dedent(_SETUP.format(modules=HOT_MODULES)))
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace", "-j", str(os.cpu_count() or 1)],
        cwd=out,
        check=True,
    )
    print(f"compiled: PYTHONPATH={os.path.join(out, 'src')} python -m benchmarks.hotpath")


if __name__ == "__main__":
    main()
