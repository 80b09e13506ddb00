"""Smoke test of the web-service benchmark (benchmarks/websvc/): one short
round of every mode. Checks that every mode served correct responses and
that the exporting modes exported spans; never a rate or a ratio (the
machine is shared and noisy)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODES = ["plain", "aiohttp", "export", "sampled-out", "aiohttp+asyncres"]
EXPORTING = {"aiohttp", "export", "aiohttp+asyncres"}


@pytest.mark.slow  # ~12 s: five service starts, 1 s of load each
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_every_mode_serves_correct_responses_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "websvc.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.websvc",
            "--rounds",
            "1",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--connections",
            "8",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    data = json.loads(out.read_text())
    assert data["problems"] == [], data["problems"]
    assert proc.returncode == 0, proc.stderr
    assert data["modes"] == MODES
    samples = {s["mode"]: s for s in data["samples"]}
    assert set(samples) == set(MODES)
    for mode, s in samples.items():
        # wrk's script checked every response: status 200 and the body.
        assert s["good"] > 0 and s["bad"] == 0 and s["non_2xx"] == 0, (mode, s)
        assert s["good"] == s["requests"], (mode, s)
        assert s["served"] >= s["good"], (mode, s)
        assert s["exit_status"] == 0, (mode, s)
        if mode in EXPORTING:
            assert s["spans"] > 0, (mode, s)
        else:
            assert s["spans"] == 0, (mode, s)
    for mode in MODES:
        assert f"| {mode} |" in proc.stdout


def _sampler() -> Any:
    """benchmarks/websvc/sampler.py, loaded from its file (it imports nothing of the repository)."""
    spec = importlib.util.spec_from_file_location(
        "websvc_sampler", ROOT / "benchmarks" / "websvc" / "sampler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sampler_charges_a_hook_only_for_what_it_does_itself() -> None:
    sampler = _sampler()
    entry = sampler.instrumentation_entry
    step = "otel_asyncres/instrumentation/task_state.py:_run"
    # In the hook, through asyncio's code it calls: the hook's.
    assert (
        entry(("MainThread", ".12/asyncio/events.py:_run", step, ".12/asyncio/base_events.py:call_soon"))
        == step
    )
    # In the program's coroutine, which the hook runs: the program's.
    assert entry(("MainThread", ".12/asyncio/events.py:_run", step, "aiohttp/web_protocol.py:start")) is None
    # In a hook the program's code entered: that hook.
    assert (
        entry(("MainThread", step, "app.py:square", "otel_asyncres/x.py:observing"))
        == "otel_asyncres/x.py:observing"
    )
    stacks = {
        ("MainThread", step, "otel_asyncres/instrumentation/tasks.py:poll_finish"): 3.0,
        ("MainThread", step, "aiohttp/web_protocol.py:start"): 6.0,
        ("otel-asyncres-export", "opentelemetry/exporter/x.py:export"): 1.0,
        ("sampler",): 0.5,
    }
    text = sampler.report(stacks)
    assert "CPU sampled: 10.00 s (the sampler itself: 0.50 s)" in text
    assert "3.00 s, 33.3% of the thread, 30.0% of the process" in text
    assert f"| `{step}` | 3.00 | 30.0% |" in text
