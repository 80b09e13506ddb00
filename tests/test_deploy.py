"""deploy/: no Docker engine here, so the files are checked by parsing them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parent.parent


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, for every port the service publishes."""
    published = {}
    for mapping in service["ports"]:
        host, container = str(mapping).split(":")[-2:]
        published[int(container)] = int(host)
    return published


def test_jaeger_compose_is_jaeger_v2_with_otlp_and_ui_ports():
    compose = yaml.safe_load((ROOT / "deploy/jaeger/docker-compose.yml").read_text())
    jaeger = compose["services"]["jaeger"]
    image, _, tag = jaeger["image"].rpartition(":")
    assert image.endswith("jaegertracing/jaeger")  # v2; v1 was jaegertracing/all-in-one
    assert re.fullmatch(r"2\.\d+\.\d+", tag), "pin a Jaeger v2 release"
    assert published_ports(jaeger) == {16686: 16686, 4317: 4317, 4318: 4318}
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


def jaeger_config_default(value: str) -> str:
    """``${env:NAME:-default}`` with the environment unset, as Jaeger reads it."""
    return re.sub(r"\$\{env:[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_jaeger_without_docker_is_pinned_and_listens_where_the_container_does() -> None:
    jaeger = ROOT / "deploy/jaeger"
    gomod = (jaeger / "go.mod").read_text()
    assert "\ntool github.com/jaegertracing/jaeger/cmd/jaeger\n" in gomod
    # The approved release, never a newer one (issue 14).
    required = re.findall(r"^\s*github\.com/jaegertracing/jaeger (v\S+)(?: // indirect)?$", gomod, re.M)
    assert required == ["v1.75.0"], "pin Jaeger v1.75.0"
    assert "github.com/jaegertracing/jaeger v1.75.0 h1:" in (jaeger / "go.sum").read_text()

    config = yaml.safe_load((jaeger / "config.yaml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"] and pipeline["exporters"] == ["jaeger_storage_exporter"]
    extensions = config["extensions"]
    (backend,) = extensions["jaeger_storage"]["backends"].values()
    assert "memory" in backend
    protocols = config["receivers"]["otlp"]["protocols"]
    assert jaeger_config_default(protocols["grpc"]["endpoint"]) == "localhost:4317"
    assert jaeger_config_default(protocols["http"]["endpoint"]) == "localhost:4318"
    assert jaeger_config_default(extensions["jaeger_query"]["http"]["endpoint"]) == "localhost:16686"
    assert extensions["jaeger_query"]["enable_tracing"] is False  # or it traces itself to :4317

    readme = (jaeger / "README.md").read_text()
    assert "cd deploy/jaeger\ngo tool jaeger --config config.yaml\n" in readme
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 .venv/bin/otel-asyncres check" in readme
    for variable in re.findall(r"\$\{env:([A-Z_]+):-", (jaeger / "config.yaml").read_text()):
        assert f"`{variable}`" in readme, f"{variable} is not explained in the README"


# -- deploy/tempo ------------------------------------------------------------------

TEMPO = ROOT / "deploy/tempo"


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> what is mounted there (a host path or a volume name)."""
    return {parts[1]: parts[0] for parts in (str(v).split(":") for v in service["volumes"])}


def tempo_compose() -> dict[str, Any]:
    return yaml.safe_load((TEMPO / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def tempo_config() -> dict[str, Any]:
    return yaml.safe_load((TEMPO / "tempo.yaml").read_text())  # type: ignore[no-any-return]


def test_tempo_compose_images_ports_and_mounts() -> None:
    compose = tempo_compose()
    services = compose["services"]
    tempo, grafana = services["tempo"], services["grafana"]

    image, _, tag = tempo["image"].rpartition(":")
    assert image == "grafana/tempo"
    assert re.fullmatch(r"2\.\d+\.\d+", tag), "pin a Tempo 2 release (3.0 needs Kafka even as one binary)"
    assert services["tempo-init"]["image"] == tempo["image"]
    image, _, tag = grafana["image"].rpartition(":")
    assert image == "grafana/grafana" and re.fullmatch(r"\d+\.\d+\.\d+", tag), grafana["image"]

    assert published_ports(tempo) == {4317: 4317, 4318: 4318, 3200: 3200}
    assert published_ports(grafana) == {3000: 3000}

    # Tempo reads the config file mounted where its command says.
    (flag,) = [arg for arg in tempo["command"] if arg.startswith("-config.file=")]
    assert (TEMPO / mounts(tempo)[flag.split("=", 1)[1]]).resolve() == (TEMPO / "tempo.yaml").resolve()
    # Its data lives in a declared volume, owned by Tempo's user before it starts.
    assert mounts(tempo)["/var/tempo"] == mounts(services["tempo-init"])["/var/tempo"] == "tempo-data"
    assert "tempo-data" in compose["volumes"]
    assert tempo["depends_on"]["tempo-init"]["condition"] == "service_completed_successfully"
    # Grafana provisions the data source file from this directory.
    provisioned = {
        path: host for path, host in mounts(grafana).items() if "/provisioning/datasources/" in path
    }
    assert [(TEMPO / host).resolve() for host in provisioned.values()] == [
        (TEMPO / "grafana-datasources.yaml").resolve()
    ]


def test_tempo_receivers_listen_on_all_interfaces() -> None:
    config = tempo_config()
    protocols = config["distributor"]["receivers"]["otlp"]["protocols"]
    # Tempo 2.7+ binds to localhost by default, which a published port cannot reach.
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert config["server"]["http_listen_port"] == 3200
    # Everything Tempo writes is in the volume.
    storage, generator = config["storage"]["trace"], config["metrics_generator"]
    assert storage["backend"] == "local"
    for path in (
        storage["wal"]["path"],
        storage["local"]["path"],
        generator["storage"]["path"],
        generator["traces_storage"]["path"],
    ):
        assert path.startswith("/var/tempo/"), path
    # TraceQL metrics over every span: the runtime spans are INTERNAL, not SERVER.
    assert generator["processor"]["local_blocks"]["filter_server_spans"] is False
    assert "local-blocks" in config["overrides"]["defaults"]["metrics_generator"]["processors"]


def test_grafana_provisions_the_tempo_datasource() -> None:
    provisioning = yaml.safe_load((TEMPO / "grafana-datasources.yaml").read_text())
    assert provisioning["apiVersion"] == 1
    (tempo,) = [d for d in provisioning["datasources"] if d["type"] == "tempo"]
    url = urlparse(tempo["url"])
    assert url.hostname in tempo_compose()["services"], "the data source must name the compose service"
    assert url.port == tempo_config()["server"]["http_listen_port"]
    assert tempo["access"] == "proxy" and tempo["isDefault"] is True


def test_tempo_readme_commands_match_the_compose_ports() -> None:
    readme = (TEMPO / "README.md").read_text()
    assert "docker compose up -d" in readme
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317" in readme
    assert (
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
        in readme
    )
    assert "http://localhost:3000" in readme


def test_tempo_readme_queries_use_the_mappings_names() -> None:
    """Every attribute, span name and value a TraceQL query of the README
    names is one docs/mapping.md defines: the queries find something."""
    queries = re.findall(r"```traceql\n(.*?)```", (TEMPO / "README.md").read_text(), re.DOTALL)
    assert len(queries) >= 10
    mapping = (ROOT / "docs/mapping.md").read_text()
    for query in queries:
        for attribute in re.findall(r"span\.(asyncio\.[a-z_.]+)", query):
            assert f"`{attribute}`" in mapping or f"`{attribute.rsplit('.', 1)[0]}.<attr>`" in mapping, (
                attribute
            )
        for value in re.findall(r'span\.asyncio\.[a-z_.]+ = "([^"]+)"', query):
            assert f"`{value}`" in mapping or f"`resource {value}`" in mapping, value
        for name in re.findall(r'name = "([^"]+)"', query):
            kind, _, rest = name.partition(" ")
            assert kind in ("task", "resource", "async_op", "poll"), name
            if kind == "async_op":
                assert f"`{rest}`" in mapping, f"{rest} is no async op source of docs/mapping.md"
