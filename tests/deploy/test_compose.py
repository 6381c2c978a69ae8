"""deploy/compose.yaml, read (test_compose_up.py runs it): structure and cross-file consistency.

The replicas, the balancer's upstream list and Prometheus' targets must name the same
services; every mounted file must exist; settings must be real SIDETASK_* settings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {n: s for n, s in compose["services"].items() if n.startswith("sidetask-")}
    assert len(found) >= 2
    return found


def _duration_s(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", text)
    assert match, text
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_replicas_are_built_from_the_project_dockerfile(
    replicas: dict[str, dict[str, Any]],
) -> None:
    for service in replicas.values():
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
        env = service["environment"]
        assert env["SIDETASK_HOST"] == "0.0.0.0"
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]


def test_replica_settings_are_real_settings(replicas: dict[str, dict[str, Any]]) -> None:
    fields = {"SIDETASK_" + f.upper() for f in Settings.model_fields}
    for service in replicas.values():
        env = service["environment"]
        assert set(env) <= fields, set(env) - fields
        Settings(**{k.removeprefix("SIDETASK_").lower(): v for k, v in env.items()})


def test_stop_waits_longer_than_the_drain(replicas: dict[str, dict[str, Any]]) -> None:
    for service in replicas.values():
        drain = float(service["environment"]["SIDETASK_DRAIN_TIMEOUT_S"])
        assert _duration_s(service["stop_grace_period"]) > drain
        assert service["stop_signal"] == "SIGTERM"


def test_balancer_and_prometheus_cover_every_replica(
    compose: dict[str, Any], replicas: dict[str, dict[str, Any]]
) -> None:
    (port,) = {s["environment"]["SIDETASK_PORT"] for s in replicas.values()}
    expected = {f"{name}:{port}" for name in replicas}
    upstream = (DEPLOY / "nginx" / "upstream.conf").read_text()
    servers = set(re.findall(r"^server (\S+)", upstream, re.M))
    assert servers == expected
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == "sidetask")
    assert {t for c in job["static_configs"] for t in c["targets"]} == expected
    # nginx waits for every replica to be ready
    depends = compose["services"]["nginx"]["depends_on"]
    assert {n: d["condition"] for n, d in depends.items()} == dict.fromkeys(
        replicas, "service_healthy"
    )


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} missing"


def test_third_party_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
        if "build" not in service:
            assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not a version"


def test_grafana_gets_the_datasource_the_dashboard_uses(compose: dict[str, Any]) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "sidetask.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}
    providers = yaml.safe_load((provisioning / "dashboards" / "sidetask.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = providers["providers"][0]["options"]["path"]
    assert any(m.startswith("./grafana/dashboards:" + path) for m in mounts)


def test_dashboard_has_the_promised_panels() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "sidetask.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in [
        "sidetask_requests_total",
        "sidetask_request_duration_seconds_bucket",
        "sidetask_queue_depth",
        "sidetask_batch_size_bucket",
        "sidetask_layers_run",
        "sidetask_task_requests_total",
        "sidetask_texts_total",
        "sidetask_gpu_memory_allocated_bytes",
    ]:
        assert metric in exprs, metric
    for quantile in ("0.5", "0.95", "0.99"):
        assert (
            f"histogram_quantile({quantile}, sum by (le) (rate(sidetask_request_duration" in exprs
        )
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_gpu_override_switches_every_replica_to_cuda(
    replicas: dict[str, dict[str, Any]],
) -> None:
    gpu = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())["services"]
    assert set(gpu) == set(replicas)
    for service in gpu.values():
        assert service["build"]["dockerfile"] == "docker/Dockerfile.cuda"
        assert service["environment"]["SIDETASK_DEVICE"] == "cuda"
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_only_the_load_balancer_is_published(compose: dict[str, Any]) -> None:
    """Running the README's command on a server must not put the replicas (and their
    /admin routes), Prometheus or Grafana on the network."""
    published = {name for name, s in compose["services"].items() if s.get("ports")}
    assert published == {"nginx"}
    assert compose["services"]["nginx"]["ports"] == ["8080:8080"]


def test_prometheus_cannot_be_shut_down_over_http(compose: dict[str, Any]) -> None:
    command = compose["services"]["prometheus"]["command"]
    assert not any("enable-lifecycle" in arg or "enable-admin-api" in arg for arg in command)


def test_grafana_has_no_default_password_and_no_anonymous_access(
    compose: dict[str, Any],
) -> None:
    env = compose["services"]["grafana"]["environment"]
    password = env.get("GF_SECURITY_ADMIN_PASSWORD", "")
    # compose refuses to start while the variable is unset (${VAR:?message}): no admin/admin
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), password
    assert str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() == "false"
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") in (None, "Viewer")


# ---- deploy/compose.local.yaml: compose on a machine with no registry -------------------
# (tests/deploy/test_compose_up.py runs it; these keep it an image swap plus addresses)

# what the override may set per service; anything else would change compose.yaml's
# behaviour (security options, limits, drain, restart) on the local run
LOCAL_KEYS = {
    "replica": {"network_mode", "environment", "healthcheck"},
    "nginx": {"image", "build", "network_mode", "volumes"},
    "prometheus": {"image", "build", "network_mode", "command", "volumes"},
    "grafana": {"profiles"},
}


@pytest.fixture(scope="module")
def local() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.local.yaml").read_text())[
        "services"
    ]
    return services


def test_local_override_swaps_images_and_addresses_only(
    compose: dict[str, Any], local: dict[str, Any], replicas: dict[str, dict[str, Any]]
) -> None:
    assert set(local) == set(compose["services"])
    for name, service in local.items():
        allowed = LOCAL_KEYS["replica" if name in replicas else name]
        assert set(service) <= allowed, f"{name}: {set(service) - allowed}"
        if "network_mode" in service:
            assert service["network_mode"] == "host"
    for name in replicas:
        assert set(local[name]["environment"]) == {"SIDETASK_HOST", "SIDETASK_PORT"}
        assert set(local[name]["healthcheck"]) == {"test"}
    assert local["grafana"]["profiles"] == ["grafana"], "no local Grafana image: left out"


def test_local_replicas_listen_on_distinct_loopback_ports_and_are_checked_there(
    compose: dict[str, Any], local: dict[str, Any], replicas: dict[str, dict[str, Any]]
) -> None:
    ports = set()
    for name, service in replicas.items():
        env = local[name]["environment"]
        assert env["SIDETASK_HOST"] == "127.0.0.1", "host network: loopback, not published"
        port = env["SIDETASK_PORT"]
        ports.add(port)
        test = local[name]["healthcheck"]["test"]
        # the same readiness probe as compose.yaml's, at the replica's own port
        assert test == [
            part.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            for part in service["healthcheck"]["test"]
        ]
        assert test != service["healthcheck"]["test"]
    assert len(ports) == len(replicas)


def test_local_prometheus_keeps_compose_flags_and_listens_on_loopback(
    compose: dict[str, Any], local: dict[str, Any]
) -> None:
    base = compose["services"]["prometheus"]["command"]
    assert local["prometheus"]["command"] == [*base, "--web.listen-address=127.0.0.1:9090"]


def test_local_images_are_built_from_debian_packages_on_the_local_base(
    local: dict[str, Any],
) -> None:
    for name in ("nginx", "prometheus"):
        build = local[name]["build"]
        dockerfile = DEPLOY / build["context"] / build["dockerfile"]
        text = dockerfile.read_text()
        assert "ARG BASE_IMAGE=sidetask-base:bookworm" in text
        assert f"apt-get install -y --no-install-recommends {name}" in text
        assert build["network"] == "host"
        for volume in local[name]["volumes"]:
            assert (DEPLOY / volume.split(":")[0]).is_file(), volume
