"""Behavioural parity: every corpus program behaves the same with and without instrumentation.

Each program in ``tests/parity/`` prints a line at every step it takes, so its
stdout records the exact interleaving of task steps, wake-ups and callbacks;
its stderr carries what asyncio itself prints (log lines such as "Task
exception was never retrieved", warnings, the traceback of an uncaught
exception). Each program runs as a subprocess three ways:

- ``python prog.py`` (the reference);
- ``python -m otel_asyncres run --exporter none prog.py``: stdout, stderr and
  the exit status must be identical to the reference;
- ``python -m otel_asyncres run --exporter console prog.py``: the console view
  goes to stderr at exit, so stdout and the exit status must be identical, and
  stderr must begin with the reference's stderr and add something (the view:
  proof that the instrumentation was active at all). The exporter does not
  depend on the loop, so this third run is made on the default loop only,
  which keeps the suite's subprocess count down.

Two normalisations: memory addresses (``0x7f...``) in reprs differ from run
to run, with or without instrumentation, and are replaced by ``0xADDR`` before
comparing; and a program that sends the root logger's records to its output
(``destroyed_pending``) also gets this package's diagnostics there (logger
``otel_asyncres``, written from the recorder's thread at no fixed point), so
those records are removed from the instrumented runs: what they say is checked
by ``test_diagnostics_of_the_corpus``. Nothing else is normalised: task names,
reprs, file paths and line numbers in tracebacks must match exactly.

Each program runs on every loop flavour this machine has (``PARITY_LOOP``):
the default loop with the C Task, the pure-Python Task (marked slow), and
uvloop when it is installed. A program restricts that with a
``# parity: variants=a,b`` line.
All subprocesses of the selected tests are started up front on a small pool,
so the suite takes about as long as its slowest few programs on each core.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import difflib
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PARITY_DIR = Path(__file__).resolve().parent / "parity"
PROGRAMS = sorted(p for p in PARITY_DIR.glob("*.py") if not p.name.startswith("_"))

VARIANTS = ["asyncio", "pytask"]
if importlib.util.find_spec("uvloop") is not None:
    VARIANTS.append("uvloop")

MODES = ("plain", "none", "console")
#: The console exporter's run is made on this loop flavour only.
CONSOLE_VARIANT = "asyncio"
TIMEOUT = 180  # seconds per subprocess: only a hung program comes near it

_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
#: A record of this package's logger, as the corpus formats them ("LOG %(levelname)s
#: %(name)s: %(message)s"); not anchored: another thread's line may be half written.
_OUR_LOG = re.compile(r"LOG [A-Z]+ otel_asyncres: [^\n]*\n")
_VARIANTS_LINE = re.compile(r"^# parity: variants=([\w,]+)\s*$", re.MULTILINE)


def program_variants(path: Path) -> list[str]:
    match = _VARIANTS_LINE.search(path.read_text())
    wanted = match.group(1).split(",") if match else VARIANTS
    return [v for v in VARIANTS if v in wanted]


CASES = [(prog, variant) for prog in PROGRAMS for variant in program_variants(prog)]


def normalise(text: str) -> str:
    """Replace memory addresses, the only thing that differs between two plain runs."""
    return _ADDRESS.sub("0xADDR", text)


@dataclasses.dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def command(prog: Path, mode: str) -> list[str]:
    if mode == "plain":
        return [sys.executable, str(prog)]
    return [sys.executable, "-m", "otel_asyncres", "run", "--exporter", mode, str(prog)]


def environment(variant: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHONASYNCIODEBUG"))}
    env["PARITY_LOOP"] = variant
    env["PYTHONHASHSEED"] = "0"
    env.pop("PYTHONWARNINGS", None)
    # Every task and wait shown, however short (the default 1 ms threshold
    # would leave a fast program with nothing to show).
    env["OTEL_ASYNCRES_MIN_TASK_DURATION"] = env["OTEL_ASYNCRES_MIN_WAIT_DURATION"] = "0"
    # A poll is long by the clock, and a loaded machine slows any poll down: the
    # corpus must be quiet of real long polls, not of the machine's hiccups
    # (the default threshold has tests of its own, in test_diagnostics).
    env["OTEL_ASYNCRES_LONG_POLL_THRESHOLD"] = "500ms"
    return env


def modes(variant: str) -> tuple[str, ...]:
    return MODES if variant == CONSOLE_VARIANT else MODES[:2]


def run_program(prog: Path, variant: str, mode: str) -> Outcome:
    proc = subprocess.run(
        command(prog, mode),
        cwd=PARITY_DIR,
        env=environment(variant),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    stdout, stderr = normalise(proc.stdout), normalise(proc.stderr)
    if mode != "plain":
        stdout, stderr = _OUR_LOG.sub("", stdout), _OUR_LOG.sub("", stderr)
    return Outcome(proc.returncode, stdout, stderr)


Key = tuple[Path, str, str]


@pytest.fixture(scope="module")
def launched(request: pytest.FixtureRequest) -> Iterator[dict[Key, concurrent.futures.Future[Outcome]]]:
    """Start every subprocess the selected parity tests need, all at once."""
    wanted: list[tuple[Path, str]] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if item.module is request.module and "prog" in params and "variant" in params:
            wanted.append((callspec.params["prog"], callspec.params["variant"]))
    workers = max(2, (os.cpu_count() or 2) + 1)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parity")
    futures = {
        (prog, variant, mode): pool.submit(run_program, prog, variant, mode)
        for prog, variant in wanted
        for mode in modes(variant)
    }
    try:
        yield futures
    finally:
        for f in futures.values():
            f.cancel()
        pool.shutdown(wait=True)


def _diff(label: str, expected: str, actual: str) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        f"{label} (plain python)",
        f"{label} (instrumented)",
    )
    return "".join(lines)


def _outcome(
    launched: dict[Key, concurrent.futures.Future[Outcome]], prog: Path, variant: str, mode: str
) -> Outcome:
    key = (prog, variant, mode)
    future = launched.get(key)
    if future is None:  # selected in a way the fixture did not foresee
        return run_program(prog, variant, mode)
    return future.result()


#: The pure-Python Task is a rarer flavour; its runs are marked slow to keep the
#: default run short (CI runs everything).
SLOW_VARIANTS = {"pytask"}


@pytest.mark.parametrize(
    ("prog", "variant"),
    [
        pytest.param(
            prog,
            variant,
            id=f"{prog.stem}-{variant}",
            marks=[pytest.mark.slow] if variant in SLOW_VARIANTS else [],
        )
        for prog, variant in CASES
    ],
)
def test_parity(launched: dict[Key, concurrent.futures.Future[Outcome]], prog: Path, variant: str) -> None:
    plain = _outcome(launched, prog, variant, "plain")
    none = _outcome(launched, prog, variant, "none")
    problems = []
    if none.stdout != plain.stdout:
        problems.append("stdout differs (--exporter none):\n" + _diff("stdout", plain.stdout, none.stdout))
    if none.stderr != plain.stderr:
        problems.append("stderr differs (--exporter none):\n" + _diff("stderr", plain.stderr, none.stderr))
    if none.returncode != plain.returncode:
        problems.append(f"exit status differs (--exporter none): {plain.returncode} -> {none.returncode}")
    if variant == CONSOLE_VARIANT:
        problems += _console_problems(plain, _outcome(launched, prog, variant, "console"))
    assert not problems, f"{prog.name} on {variant}:\n" + "\n".join(problems)


def _console_problems(plain: Outcome, console: Outcome) -> list[str]:
    problems = []
    if console.stdout != plain.stdout:
        problems.append(
            "stdout differs (--exporter console):\n" + _diff("stdout", plain.stdout, console.stdout)
        )
    if console.returncode != plain.returncode:
        problems.append(
            f"exit status differs (--exporter console): {plain.returncode} -> {console.returncode}"
        )
    if not console.stderr.startswith(plain.stderr):
        head = console.stderr[: len(plain.stderr)]
        problems.append(
            "stderr (--exporter console) does not begin with the plain run's stderr:\n"
            + _diff("stderr", plain.stderr, head)
        )
    skipped = plain.stdout.startswith("SKIP:")
    if not skipped and len(console.stderr) <= len(plain.stderr):
        problems.append("--exporter console printed nothing: was the program instrumented at all?")
    return problems


#: Corpus programs whose console run reports diagnostics, and why that is right.
EXPECTED_DIAGNOSTICS = {
    # Its tasks are destroyed while pending: nothing could ever wake them.
    "destroyed_pending": {"lost_waker"},
    # A lock-order inversion, made to be one: reported, and the program's steps unchanged.
    "lock_order_inversion": {"deadlock"},
}


def reported_diagnostics(stderr: str) -> set[str]:
    """The kinds in the console view's end-of-run summary of diagnostics."""
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("diagnostics: ")), None)
    if start is None:
        return set()
    return {line.split()[0] for line in lines[start + 1 :] if line.startswith("  ") and line.strip()}


def test_diagnostics_of_the_corpus(launched: dict[Key, concurrent.futures.Future[Outcome]]) -> None:
    """No deadlock, lost waker or other lint on the corpus but where it is right."""
    found = {
        prog.stem: reported_diagnostics(_outcome(launched, prog, CONSOLE_VARIANT, "console").stderr)
        for prog in PROGRAMS
        if CONSOLE_VARIANT in program_variants(prog)
    }
    assert {stem: kinds for stem, kinds in found.items() if kinds} == EXPECTED_DIAGNOSTICS


def test_corpus_is_complete() -> None:
    """Guards the parametrisation: an empty glob would make the suite pass vacuously."""
    assert len(PROGRAMS) >= 30, [p.name for p in PROGRAMS]
    assert all(program_variants(p) for p in PROGRAMS)


@pytest.mark.slow
@pytest.mark.parametrize("prog", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_corpus_is_deterministic(prog: Path) -> None:
    """Two plain runs agree: a difference in test_parity is the instrumentation's doing."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        runs = list(pool.map(lambda _: run_program(prog, VARIANTS[0], "plain"), range(3)))
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]
