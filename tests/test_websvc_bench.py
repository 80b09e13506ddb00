"""Smoke test of the web-service benchmark (benchmarks/websvc/): one short
round of every mode. Checks that every mode served correct responses and
that the exporting modes exported spans; never a rate or a ratio (the
machine is shared and noisy)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

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
