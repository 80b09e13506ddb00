"""deploy/: no Docker engine here, so the files are checked by parsing them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_jaeger_compose_is_jaeger_v2_with_otlp_and_ui_ports():
    compose = yaml.safe_load((ROOT / "deploy/jaeger/docker-compose.yml").read_text())
    jaeger = compose["services"]["jaeger"]
    image, _, tag = jaeger["image"].rpartition(":")
    assert image.endswith("jaegertracing/jaeger")  # v2; v1 was jaegertracing/all-in-one
    assert re.fullmatch(r"2\.\d+\.\d+", tag), "pin a Jaeger v2 release"
    published = {}
    for mapping in jaeger["ports"]:
        host, container = str(mapping).split(":")[-2:]
        published[int(container)] = int(host)
    assert published == {16686: 16686, 4317: 4317, 4318: 4318}
    # The OTLP receivers must listen on all interfaces, or the ports are unreachable.
    command = " ".join(jaeger["command"])
    assert "receivers.otlp.protocols.grpc.endpoint=0.0.0.0:4317" in command
    assert "receivers.otlp.protocols.http.endpoint=0.0.0.0:4318" in command


def test_jaeger_readme_commands_match_the_compose_ports():
    readme = (ROOT / "deploy/jaeger/README.md").read_text()
    assert "docker compose up -d" in readme
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317" in readme
    assert "http://localhost:4318" in readme and "http/protobuf" in readme
    assert "http://localhost:16686" in readme
