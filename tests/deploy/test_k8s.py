"""The Kubernetes manifests: every rendered overlay is valid and keeps its promises.

Rendering is the real `kubectl kustomize` (the kustomize built into kubectl; .ci/run installs
kubectl), so the overlays are checked as a cluster operator would build them. Validation is
kubernetes-validate in strict mode (unknown fields are errors) against the oldest and
newest Kubernetes versions we claim. The ServiceMonitor is a CRD of the Prometheus
Operator, whose schema kubernetes-validate does not carry: it is checked structurally.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["cpu", "gpu"]
VERSIONS = ["1.30.0", "1.37.0"]
# Prometheus Operator CRDs: their schemas are not in kubernetes-validate.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
Resource = dict[str, Any]


@functools.cache
def _rendered(folder: Path) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl missing (apt-get install kubectl; .ci/run does)")
    done = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def build(folder: Path) -> list[Resource]:
    """What ``kubectl kustomize folder`` prints, as resources (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_rendered(folder)) if doc]


def find(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    """The one resource of ``kind`` (and ``name``)."""
    hits = [
        r
        for r in resources
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)
    ]
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} resources of kind {kind} named {name}")
    return hits[0]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, build(K8S / "overlays" / request.param)


def _container(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return find(resources, "Deployment", "sidetask")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_manifest_is_valid_kubernetes(
    rendered: tuple[str, list[dict[str, Any]]], version: str
) -> None:
    _, resources = rendered
    kinds = {r["kind"] for r in resources}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler"} <= kinds
    assert {"PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"} <= kinds
    for resource in resources:
        if resource["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(resource, version, strict=True)


def test_every_base_file_is_valid_on_its_own() -> None:
    for path in sorted((K8S / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] in CRD_KINDS | {"Kustomization"}:
                continue
            kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_strict_validation_rejects_a_misspelled_field() -> None:
    """The check above can fail: a typo in a probe is an error, not ignored."""
    deployment = find(build(K8S / "overlays" / "cpu"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_probes_point_at_the_servers_health_routes(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    container = _container(rendered[1])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/readyz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # model load time


def test_a_stopping_pod_gets_time_to_drain(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    resources = rendered[1]
    pod = find(resources, "Deployment")["spec"]["template"]["spec"]
    settings = find(resources, "ConfigMap", "sidetask-settings")["data"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(settings["SIDETASK_DRAIN_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + drain


def test_pods_run_unprivileged_with_a_read_only_root(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    pod = find(rendered[1], "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["resources"]["requests"]["cpu"]  # HPA on CPU needs a request


def test_settings_reach_the_container_as_sidetask_env(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    from server.settings import Settings

    resources = rendered[1]
    container = _container(resources)
    names = [e["configMapRef"]["name"] for e in container["envFrom"]]
    data = find(resources, "ConfigMap", names[0])["data"]
    fields = {"SIDETASK_" + f.upper() for f in Settings.model_fields}
    assert set(data) <= fields, f"unknown settings: {set(data) - fields}"
    assert data["SIDETASK_HOST"] == "0.0.0.0"
    port = int(data["SIDETASK_PORT"])
    assert container["ports"][0]["containerPort"] == port
    # the values parse as Settings (types and ranges)
    Settings(**{k.removeprefix("SIDETASK_").lower(): v for k, v in data.items()})


def test_service_pdb_hpa_and_monitor_select_the_deployment(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    resources = rendered[1]
    deployment = find(resources, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    service = find(resources, "Service")
    assert selects(service["spec"]["selector"])
    assert selects(find(resources, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    ref = find(resources, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    monitor = find(resources, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert all(
        service["metadata"]["labels"].get(k) == v
        for k, v in monitor["spec"]["selector"]["matchLabels"].items()
    )
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
        assert {"targetLabel": "job", "replacement": "sidetask"} in endpoint["relabelings"]


def test_cpu_overlay_scales_on_cpu() -> None:
    resources = build(K8S / "overlays" / "cpu")
    assert _container(resources)["image"].endswith(":0.1.0-cpu")
    metrics = find(resources, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metrics == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
    assert find(resources, "ConfigMap")["data"]["SIDETASK_DEVICE"] == "cpu"


def test_gpu_overlay_asks_for_a_gpu_and_scales_on_queue_depth() -> None:
    resources = build(K8S / "overlays" / "gpu")
    container = _container(resources)
    assert container["image"].endswith(":0.1.0-cuda")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # the patch merged into the base container instead of replacing it
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["volumeMounts"]
    settings = find(resources, "ConfigMap")["data"]
    assert settings["SIDETASK_DEVICE"] == "cuda" and settings["SIDETASK_DTYPE"] == "float16"
    assert settings["SIDETASK_MAX_BATCH_TOKENS"]  # base settings kept
    pod = find(resources, "Deployment")["spec"]["template"]["spec"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    (metric,) = find(resources, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "sidetask_queue_depth"


def test_queue_depth_metric_is_one_the_server_exports() -> None:
    from server.metrics import Metrics

    text = Metrics().scrape().decode()
    assert "\nsidetask_queue_depth " in text or text.startswith("sidetask_queue_depth ")


def test_operator_rules_are_the_alerts_compose_uses() -> None:
    """base/prometheusrule.yaml carries exactly deploy/prometheus/alerts.yml's groups."""
    rule = find(build(K8S / "base"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"], "run deploy/k8s/sync_rules.py"
