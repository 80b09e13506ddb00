"""Smoke test of the benchmark harness (benchmarks/): one tiny workload in every
mode, the micro-benchmarks at their smallest. Checks the shape of the result
only, never a timing or a ratio: the machine is shared and noisy."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # ~9 s on an idle 2-core machine, more when it is loaded
def test_quick_run_gives_a_well_formed_result(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--quiet",
            "--scale",
            "0.01",
            "--workloads",
            "echo_server",
            "--modes",
            "plain,sampled-out,export-null,export,detailed,otel-asyncio",
            "--json",
            str(out),
            "--markdown",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["workloads"] == ["echo_server"]
    modes = data["modes"]
    assert modes == ["plain", "sampled-out", "export-null", "export", "detailed", "otel-asyncio"]
    results = data["results"]["echo_server"]
    summary = data["summary"]["echo_server"]
    for mode in modes:
        assert mode in results, mode
        if results[mode].get("skipped"):  # otel-asyncio when the package is not installed
            assert mode == "otel-asyncio"
            continue
        samples = results[mode]["samples"]
        assert len(samples) == 1, (mode, data["problems"])
        sample = samples[0]
        assert sample["wall"] > 0 and sample["cpu"] > 0 and sample["loop"] > 0
        assert sample["wall"] >= sample["loop"]
        if mode != "plain":
            for metric in ("wall", "cpu", "loop"):
                ratio = summary[mode][f"{metric}_ratio"]
                assert ratio > 0 and math.isfinite(ratio), (mode, metric, ratio)
        if mode in ("export-null", "export", "detailed"):
            assert sample["spans"] > 0
            assert summary[mode]["spans_per_s"] > 0
    memory = data["micro"]["memory"]
    assert set(memory) == {"plain", "export-null"}, data["problems"]
    assert memory["plain"]["live_tasks"]["total"] > 0
    # The report names every mode, the memory per entity, and the targets.
    for mode in modes:
        assert f"| echo_server | {mode} |" in proc.stdout
    assert "per live task" in proc.stdout
    assert "| export <= 1.2x | echo_server |" in proc.stdout


@pytest.mark.slow  # ~8 s: a few seconds of the long-run program
def test_the_long_run_reports_visibility_loss_and_memory(tmp_path: Path) -> None:
    """The long run (benchmarks/longrun.py) in miniature, in its own process:
    the program does its work, every long-lived entity reaches the receiver
    (at the latest when the run ends), OTLP reports nothing dropped, and
    memory and live counts are sampled. No time is asserted."""
    out = tmp_path / "longrun.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.longrun",
            "--minutes",
            "0.1",
            "--rate",
            "5",
            "--every",
            "1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["program"]["echoed"] == result["expected_echoed"] > 0
    received, long_lived = result["received"], result["long_lived"]
    assert len(long_lived) == 4
    assert set(received["first_seen_s"]) == set(long_lived)
    assert all(received["windows"][name] >= 1 for name in long_lived)
    dropped = (received["dropped_events"], received["dropped_attributes"], received["dropped_links"])
    assert dropped == (0, 0, 0)
    assert len(result["samples"]) >= 3
    assert all(s["rss_mb"] > 0 and s["live_tasks"] >= 2 for s in result["samples"])
    assert "first span of each long-lived entity" in proc.stdout
