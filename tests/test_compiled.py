"""Which build of the hot path is loaded (compiled core or pure Python), and
that it is one or the other, never a mix.

``OTEL_ASYNCRES_EXPECT_COMPILED=1`` (or ``0``) makes the run fail unless the
compiled core is (or is not) the one loaded, so that a CI step that means to
test one build cannot silently test the other.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from types import FunctionType

import pytest

import otel_asyncres
from otel_asyncres import _core


def _is_compiled(module_name: str) -> bool:
    module = importlib.import_module(f"otel_asyncres.{module_name}")
    return not (module.__file__ or "").endswith(".py")


def test_compiled_says_which_build_is_loaded():
    from otel_asyncres.instrumentation import frames

    compiled = otel_asyncres.COMPILED
    assert isinstance(compiled, bool)
    assert compiled is not isinstance(frames.user_location, FunctionType)
    assert otel_asyncres.COMPILED_REASON
    own_frame = frames.OWN_FRAME
    assert own_frame == (0 if compiled else 1)
    print(f"otel_asyncres: {otel_asyncres.COMPILED_REASON}")


def test_hot_modules_all_compiled_or_none():
    kinds = {name: _is_compiled(name) for name in _core.HOT_MODULES}
    assert set(kinds.values()) == {otel_asyncres.COMPILED}, kinds


def test_the_expected_build_is_loaded():
    expected = os.environ.get("OTEL_ASYNCRES_EXPECT_COMPILED")
    if expected is None:
        pytest.skip("OTEL_ASYNCRES_EXPECT_COMPILED is not set")
    compiled = otel_asyncres.COMPILED
    assert compiled is (expected == "1"), otel_asyncres.COMPILED_REASON


def test_pure_python_variable_loads_the_sources():
    code = textwrap.dedent(
        """
        import otel_asyncres
        from otel_asyncres import _core
        from otel_asyncres.instrumentation import frames
        assert not otel_asyncres.COMPILED, otel_asyncres.COMPILED_REASON
        assert frames.OWN_FRAME == 1
        import importlib
        for name in _core.HOT_MODULES:
            path = importlib.import_module("otel_asyncres." + name).__file__
            assert path.endswith(".py"), path
        print(otel_asyncres.COMPILED_REASON)
        """
    )
    env = {**os.environ, "OTEL_ASYNCRES_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "pure Python" in out.stdout
