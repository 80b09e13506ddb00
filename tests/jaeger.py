"""A real Jaeger for the tests, built from the Go module in deploy/jaeger.

deploy/jaeger/go.mod has Jaeger's ``cmd/jaeger`` (the Jaeger v2 binary) as a Go tool.
:func:`build` compiles it once into a cache directory, under a name that carries
the Jaeger version and a hash of go.mod and go.sum, so that test runs reuse it and a
change of version builds anew. :class:`Jaeger` starts it with deploy/jaeger/config.yaml
on free ports (in-memory storage, OTLP gRPC and HTTP in, the query API out), waits
until it is ready and stops it.

Standard library only: ``.ci/run`` builds with it before any virtual environment
exists (``python3 tests/jaeger.py build``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "deploy" / "jaeger"
CONFIG = MODULE / "config.yaml"
PACKAGE = "github.com/jaegertracing/jaeger/cmd/jaeger"
#: Set to 1 (as .ci/run does) to make a missing Go a failure instead of a skip.
REQUIRE = "OTEL_ASYNCRES_REQUIRE_JAEGER"
BUILD_TIMEOUT = 3600  # seconds; a cold build on two cores takes minutes
READY_TIMEOUT = 60


class GoMissing(Exception):
    """No Go toolchain on this machine: the Jaeger tests cannot run."""


def required() -> bool:
    return os.environ.get(REQUIRE, "") not in ("", "0")


def find_go() -> str:
    """The ``go`` command: $GO, else ``go`` on PATH, else /usr/local/go/bin/go."""
    for candidate in (os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise GoMissing("no Go toolchain (go on PATH, $GO or /usr/local/go/bin/go) to build Jaeger")


def version() -> str:
    """The Jaeger module version deploy/jaeger/go.mod requires."""
    match = re.search(r"^\s*github\.com/jaegertracing/jaeger (v\S+)", (MODULE / "go.mod").read_text(), re.M)
    if not match:
        raise RuntimeError("deploy/jaeger/go.mod requires no github.com/jaegertracing/jaeger")
    return match[1]


def cache_dir() -> Path:
    """$OTEL_ASYNCRES_JAEGER_CACHE, else $XDG_CACHE_HOME/otel-asyncres, else ~/.cache/otel-asyncres."""
    if explicit := os.environ.get("OTEL_ASYNCRES_JAEGER_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "otel-asyncres"


def binary_path() -> Path:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((MODULE / name).read_bytes())
    return cache_dir() / f"jaeger-{version().lstrip('v')}-{digest.hexdigest()[:12]}"


def build(log: Any = None) -> Path:
    """The Jaeger binary, built with ``go build`` in deploy/jaeger unless the cache
    has it. Raises :class:`GoMissing` when there is no Go; a failed build raises
    ``RuntimeError`` (that is a failure, never a reason to skip)."""
    target = binary_path()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = find_go()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-")) / target.name
    try:
        result = subprocess.run(
            [go, "build", "-o", str(partial), PACKAGE],
            cwd=MODULE,
            stdout=log or subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
        if result.returncode != 0:
            raise RuntimeError(f"go build {PACKAGE} failed ({result.returncode}):\n{result.stdout or ''}")
        os.replace(partial, target)  # atomic: a concurrent run sees a whole binary or none
    finally:
        shutil.rmtree(partial.parent, ignore_errors=True)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Jaeger:
    """A Jaeger process with in-memory storage on free ports of 127.0.0.1."""

    PORTS = ("otlp_grpc", "otlp_http", "query_http", "query_grpc", "health")

    def __init__(self, binary: Path, config: Path = CONFIG) -> None:
        self.binary = binary
        self.config = config
        self.host = "127.0.0.1"
        self.ports = {name: free_port() for name in self.PORTS}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="jaeger-", suffix=".log")[1])

    @property
    def otlp_grpc(self) -> str:
        return f"http://{self.host}:{self.ports['otlp_grpc']}"

    @property
    def otlp_http(self) -> str:
        return f"http://{self.host}:{self.ports['otlp_http']}"

    @property
    def query(self) -> str:
        return f"http://{self.host}:{self.ports['query_http']}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            JAEGER_LISTEN_HOST=self.host,
            JAEGER_OTLP_GRPC_PORT=str(self.ports["otlp_grpc"]),
            JAEGER_OTLP_HTTP_PORT=str(self.ports["otlp_http"]),
            JAEGER_QUERY_HTTP_PORT=str(self.ports["query_http"]),
            JAEGER_QUERY_GRPC_PORT=str(self.ports["query_grpc"]),
            JAEGER_HEALTH_PORT=str(self.ports["health"]),
        )
        return env

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "--config", str(self.config)],
                cwd=MODULE,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until the health check says the whole collector is up (extensions and
        pipelines started) and the query API answers."""
        deadline = time.monotonic() + timeout
        health = f"http://{self.host}:{self.ports['health']}/status"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"jaeger exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    healthy = response.status == 200
                if healthy and self.get("/api/services") is not None:
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"jaeger not ready after {timeout:g}s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Jaeger:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)

    # -- the query API (the one Jaeger's UI uses) ---------------------------------

    def get(self, path: str, **params: Any) -> Any:
        """The JSON of ``GET path?params``, or None for a 404."""
        url = self.query + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def text(self, path: str) -> str:
        with urllib.request.urlopen(self.query + path, timeout=10) as response:
            return str(response.read().decode("utf-8", "replace"))

    def services(self) -> list[str]:
        return list(self.get("/api/services")["data"] or [])

    def operations(self, service: str) -> list[str]:
        quoted = urllib.parse.quote(service, safe="")
        return list(self.get(f"/api/services/{quoted}/operations")["data"] or [])

    def traces(self, service: str) -> list[dict[str, Any]]:
        """Every trace of ``service`` (the search the UI's Find Traces makes)."""
        answer = self.get("/api/traces", service=service, limit=1000, lookback="1h")
        return list(answer["data"] or [])

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        answer = self.get(f"/api/traces/{trace_id}")
        if answer is None:
            return None
        (trace,) = answer["data"]
        return dict(trace)

    def trace_v3(self, trace_id: str) -> dict[str, Any]:
        """A trace from Jaeger v2's own API: OTLP JSON, warnings as the span
        attribute ``@jaeger@warnings``."""
        return dict(self.get(f"/api/v3/traces/{trace_id}"))

    def wait_for_spans(self, service: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        """The traces of ``service`` once they hold ``count`` spans in all (or
        whatever is there after ``timeout``: the caller's assertion says what is missing)."""
        deadline = time.monotonic() + timeout
        while True:
            traces = self.traces(service)
            if sum(len(t["spans"]) for t in traces) >= count or time.monotonic() > deadline:
                return traces
            time.sleep(0.2)


def main(argv: list[str]) -> int:
    if argv[1:] == ["build"]:
        try:
            print(build(log=sys.stderr))
        except GoMissing as error:
            print(f"jaeger: {error}", file=sys.stderr)
            return 1
        return 0
    if argv[1:] == ["path"]:
        print(binary_path())
        return 0
    print(f"usage: {argv[0]} build|path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
