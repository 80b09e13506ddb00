"""The documentation says what the code does: the guide's trace is the one
``otel-asyncres run examples/oneshot.py`` prints, and every relative link
in the Markdown files leads somewhere."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from otlp_receivers import child_env

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = sorted(
    [ROOT / "README.md", ROOT / "CHANGELOG.md", *ROOT.glob("docs/*.md"), *ROOT.glob("deploy/*/*.md")]
)


def shape(tree: str) -> Counter[str]:
    """The lines of a console tree without what changes from run to run:
    the tree drawing (siblings that start together come in either order),
    durations, offsets, the trace id, and whether a resource was collected
    before exit (the garbage collector's timing varies by Python version)."""
    lines = Counter()
    for line in tree.splitlines():
        text = re.sub(r"^[\s│├└─]+", "", line)
        if text.startswith("resource "):
            text = text.replace("  unfinished at exit", "")
        text = re.sub(r"\d+(\.\d+)?ms", "<t>", text)
        text = re.sub(r"trace [0-9a-f]{32}", "trace <id>", text)
        if text:
            lines[text] += 1
    return lines


def test_the_guides_trace_is_what_run_prints() -> None:
    guide = (ROOT / "docs" / "guide.md").read_text()
    (printed,) = [block for block in re.findall(r"```text\n(.*?)```", guide, re.DOTALL) if "trace " in block]
    result = subprocess.run(
        [sys.executable, "-m", "otel_asyncres", "run", "examples/oneshot.py"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert shape(printed) == shape(result.stdout + result.stderr), (
        "docs/guide.md shows another trace than the program prints: run it and update the guide"
    )


def test_relative_links_lead_somewhere() -> None:
    for page in MARKDOWN:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
