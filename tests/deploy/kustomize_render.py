"""A small kustomize renderer for the tests (no kubectl or kustomize binary here).

It implements exactly the features deploy/k8s uses and refuses anything else, so a new
feature in the manifests fails loudly instead of being silently ignored: ``resources``
(files and folders), ``components``, ``patches`` (strategic merge by ``path`` or inline,
JSON 6902 inline with a ``target``) and ``images``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "resources", "components", "patches", "images"}
# Strategic-merge keys for the lists the manifests patch (from the Kubernetes API).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


def build(folder: str | Path) -> list[Resource]:
    """The resources ``kubectl kustomize folder`` would print, in order."""
    folder = Path(folder)
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise ValueError(f"{folder}: kustomization fields not supported here: {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = folder / entry
        resources.extend(build(path) if path.is_dir() else _load_all(path))
    for entry in spec.get("components", []):
        resources = _apply_component(folder / entry, resources)
    for patch in spec.get("patches", []):
        _apply_patch(folder, patch, resources)
    for image in spec.get("images", []):
        _set_image(resources, image)
    return resources


def _load_all(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _apply_component(folder: Path, resources: list[Resource]) -> list[Resource]:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    if spec.get("kind") != "Component":
        raise ValueError(f"{folder}: not a Component")
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise ValueError(f"{folder}: component fields not supported here: {sorted(unknown)}")
    resources = resources + [r for e in spec.get("resources", []) for r in _load_all(folder / e)]
    for patch in spec.get("patches", []):
        _apply_patch(folder, patch, resources)
    return resources


def _matches(resource: Resource, target: dict[str, str]) -> bool:
    meta = resource.get("metadata", {})
    checks = {"kind": resource.get("kind"), "name": meta.get("name")}
    return all(checks.get(k) == v for k, v in target.items())


def _apply_patch(folder: Path, patch: dict[str, Any], resources: list[Resource]) -> None:
    body = (
        yaml.safe_load((folder / patch["path"]).read_text())
        if "path" in patch
        else yaml.safe_load(patch["patch"])
    )
    if isinstance(body, list):  # JSON 6902
        targets = [r for r in resources if _matches(r, patch["target"])]
        if not targets:
            raise ValueError(f"patch target {patch['target']} matches nothing")
        for resource in targets:
            for op in body:
                _json6902(resource, op)
        return
    target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
    hits = [r for r in resources if _matches(r, target)]
    if len(hits) != 1:
        raise ValueError(f"strategic merge patch {target} matches {len(hits)} resources")
    merged = _merge(hits[0], body)
    hits[0].clear()
    hits[0].update(merged)


def _merge(base: Any, patch: Any, key: str | None = None) -> Any:
    """Strategic merge: maps merge, lists with a known merge key merge by it, others replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        field = MERGE_KEYS[key]
        items: list[Any] = copy.deepcopy(base)
        for item in patch:
            same = [i for i, b in enumerate(items) if b.get(field) == item.get(field)]
            if same:
                items[same[0]] = _merge(items[same[0]], item)
            else:
                items.append(copy.deepcopy(item))
        return items
    return copy.deepcopy(patch)


def _json6902(resource: Resource, op: dict[str, Any]) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent: Any = resource
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    kind = op["op"]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if kind == "add":
            parent.insert(index, copy.deepcopy(op["value"]))
        elif kind == "replace":
            parent[index] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[index]
        else:
            raise ValueError(f"JSON patch op {kind!r} not supported here")
        return
    if kind in ("add", "replace"):
        if kind == "replace" and last not in parent:
            raise ValueError(f"JSON patch replace of missing path {op['path']}")
        parent[last] = copy.deepcopy(op["value"])
    elif kind == "remove":
        del parent[last]
    else:
        raise ValueError(f"JSON patch op {kind!r} not supported here")


def _set_image(resources: list[Resource], image: dict[str, str]) -> None:
    for resource in resources:
        pod = resource.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            ref = container["image"]
            name = ref.split("@")[0].rsplit(":", 1)[0] if ":" in ref.split("/")[-1] else ref
            if name != image["name"]:
                continue
            new = image.get("newName", name)
            tag = image.get("newTag")
            container["image"] = f"{new}:{tag}" if tag else new


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
