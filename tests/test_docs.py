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


# -- every attribute's OTLP type is the one docs/mapping.md gives (issue 13 item 6) --------

_TYPE_NAMES = {"string": str, "bool": bool, "int": int, "double": float}


def _documented_types() -> tuple[dict[str, set[str]], list[tuple[re.Pattern[str], set[str]]]]:
    """The table under "## Attribute types": exact keys, and patterns
    (``<name>``: any one name), each with its type names. The rows of the
    ``state_update`` and ``poll_op`` events (keys of their own) are checked
    by ``_event_key_types``."""
    text = (ROOT / "docs" / "mapping.md").read_text()
    table = text.split("## Attribute types", 1)[1].split("\n## ", 1)[0]
    exact: dict[str, set[str]] = {}
    patterns: list[tuple[re.Pattern[str], set[str]]] = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or ";" in cells[1] or not cells[0].startswith("`"):
            continue
        types = set(re.findall(r"\b(string|bool|int|double)(\[\])?", cells[1]))
        names = {t + brackets for t, brackets in types}
        for key in re.findall(r"`([^`]+)`", cells[0]):
            if "<name>" in key:
                patterns.append((re.compile(re.escape(key).replace("<name>", r"[^.]+") + "$"), names))
            else:
                exact[key] = names
    return exact, patterns


def _type_name(value: object) -> str:
    if isinstance(value, (list, tuple)):
        inner = {_type_name(v) for v in value}
        assert len(inner) == 1, value
        return inner.pop() + "[]"
    for name, cls in _TYPE_NAMES.items():
        if type(value) is cls:
            return name
    raise AssertionError(f"not an OTLP type: {value!r}")


def _event_key_types(event: str, key: str) -> set[str] | None:
    if event == "state_update":
        return {"string"} if key.endswith((".op", ".unit")) else set(_TYPE_NAMES)
    if event == "poll_op":
        return {"op_name": {"string"}, "is_ready": {"bool"}}.get(key)
    return None


async def _folding_failing_and_deadlocked() -> None:
    """Folded tasks and waits, an exception, a deadlock, a long poll."""
    import asyncio
    import time

    async def brief() -> int:
        return 1

    async def failing() -> None:
        raise ValueError("failing")

    a, b = asyncio.Lock(), asyncio.Lock()

    async def locking(first: asyncio.Lock, second: asyncio.Lock) -> None:
        async with first:
            await asyncio.sleep(0.01)
            async with second:
                pass

    await asyncio.gather(*(brief() for _ in range(300)), failing(), return_exceptions=True)
    pair = [asyncio.create_task(locking(a, b)), asyncio.create_task(locking(b, a))]
    await asyncio.sleep(0.05)
    time.sleep(0.12)  # a long poll
    for task in pair:
        task.cancel()
    await asyncio.gather(*pair, return_exceptions=True)


def test_every_attribute_has_the_type_docs_mapping_gives() -> None:
    import asyncio
    import contextlib
    import io
    import runpy

    import otel_asyncres
    from conftest import make_traced

    exact, patterns = _documented_types()
    seen: dict[tuple[str, str], str] = {}
    runs = [({"window_events": 10, "op_poll_spans": None}, f"examples/{name}.py") for name in EXAMPLES]
    runs += [({"detail": "all"}, "examples/pipeline.py"), ({"budget": 50}, _folding_failing_and_deadlocked)]
    for options, program in runs:
        traced = make_traced(**options)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                if callable(program):
                    asyncio.run(program())
                else:
                    runpy.run_path(str(ROOT / program), run_name="__main__")
            traced.flush()
        finally:
            otel_asyncres.uninstrument()
        for span in traced.exporter.get_finished_spans():
            items = [("span", k, v) for k, v in (span.attributes or {}).items()]
            for event in span.events:
                items += [(event.name, k, v) for k, v in (event.attributes or {}).items()]
            for link in span.links:
                items += [("link", k, v) for k, v in (link.attributes or {}).items()]
            for where, key, value in items:
                seen[(where, key)] = _type_name(value)
    wrong = []
    for (where, key), type_name in sorted(seen.items()):
        allowed = _event_key_types(where, key)
        if allowed is None:
            allowed = exact.get(key)
        if allowed is None:
            allowed = next((names for pattern, names in patterns if pattern.match(key)), None)
        if allowed is None or type_name not in allowed:
            wrong.append(f"{where}: {key} is {type_name}, documented {sorted(allowed or ['nothing'])}")
    assert not wrong, "\n".join(wrong)
    # The programs reached the kinds of attribute the table is about.
    keys = {key for _, key in seen}
    reached = ("asyncio.lint.tasks", "asyncio.folded.waits.counts", "asyncio.window.index", "exception.type")
    assert keys.issuperset(reached), set(reached) - keys


EXAMPLES = sorted(path.stem for path in (ROOT / "examples").glob("*.py"))
