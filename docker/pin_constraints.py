"""Write docker/constraints.txt: the runtime closure of sidetask pinned to what .venv runs.

Why: the images must install exactly the versions the tests passed with, without pinning
anything in pyproject.toml (which keeps ranges for library users). torch is left out
because each Dockerfile installs its own pinned wheel (CPU or CUDA) first.

    .venv/bin/python docker/pin_constraints.py > docker/constraints.txt
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HEADER = """\
# Runtime pins for the images (pip install -c): the versions tested in .venv.
# torch is installed first and pinned in the Dockerfiles (CPU or CUDA wheel), so not here.
# Regenerate: .venv/bin/python docker/pin_constraints.py > docker/constraints.txt"""


def closure(root: str) -> dict[str, str]:
    """Installed version of every package ``root`` needs at run time (extras followed)."""
    seen: dict[str, tuple[str, set[str]]] = {}

    def walk(name: str, extras: set[str]) -> None:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            return
        key = canonicalize_name(dist.metadata["Name"])
        if key in seen and extras <= seen[key][1]:
            return
        seen.setdefault(key, (dist.version, set()))[1].update(extras)
        active = seen[key][1] or {""}
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in active):
                walk(req.name, set(req.extras))

    walk(root, set())
    return {k: v for k, (v, _) in seen.items() if k != canonicalize_name(root)}


def main() -> None:
    print(HEADER)
    for name, version in sorted(closure("sidetask").items()):
        if name != "torch":
            print(f"{name}=={version}")


if __name__ == "__main__":
    main()
