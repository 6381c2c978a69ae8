"""Build the images on a machine with no image registry (`make image`, docs/deploy.md).

    python3 docker/local_build.py image            # sidetask:cpu (starts dockerd if needed)
    python3 docker/local_build.py compose-images   # + nginx and Prometheus for compose
    python3 docker/local_build.py stop-engine      # stop the dockerd this script started

Why each step: no registry answers here, so `FROM python:...-slim` cannot be pulled. The
base image is made from Debian's packages instead (debootstrap, then `docker import`) and
cached under BASE_IMAGE. Containers and build steps use the host's network (dockerd runs
with --iptables=false --bridge=none), pip trusts the CA bundle pip's own configuration
names, and torch comes from pip's find-links folder; docker/Dockerfile takes all of that as
build arguments and is otherwise what users build. Standard library only; needs root.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKER_DIR = ROOT / "docker"
EXTRAS = DOCKER_DIR / "build-extras"
EXTRAS_IN_IMAGE = "/opt/build-extras"
BASE_IMAGE = "sidetask-base:bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CPU_IMAGE = "sidetask:cpu"
DEPS_STAGE = "sidetask-deps:cpu"  # the CPU image's venv stage, kept as its layer cache
LABEL = "org.sidetask.local-build=true"  # on every image built here, for prune_old()
# compose's nginx and Prometheus, from Debian's packages on BASE_IMAGE
COMPOSE_IMAGES = {
    "sidetask-nginx:local": DOCKER_DIR / "local" / "nginx.Dockerfile",
    "sidetask-prometheus:local": DOCKER_DIR / "local" / "prometheus.Dockerfile",
}
PIDFILE = Path("/var/run/sidetask-dockerd.pid")
ENGINE_LOG = Path("/var/log/sidetask-dockerd.log")
SOCKET = "unix:///var/run/docker.sock"
SBIN = "/usr/sbin:/usr/local/sbin:/sbin"


class Unavailable(RuntimeError):
    """Docker cannot be had on this machine; the message says why (tests skip with it)."""


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=SBIN)
    if found is None:
        raise Unavailable(f"{name} not installed (Debian: apt-get install {package})")
    return found


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run the docker CLI; its stdout, or CalledProcessError with stderr when it fails."""
    cli = _binary("docker", "docker.io")
    done = subprocess.run(
        [cli, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return done.stdout


def engine_answers() -> bool:
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=15)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


def ensure_engine(deadline_s: float = 60) -> bool:
    """A Docker engine that answers; True when this call had to start dockerd.

    dockerd runs with --iptables=false --bridge=none: this machine's kernel policy allows no
    NAT bridge, so every container and build step uses the host network.
    """
    _binary("docker", "docker.io")
    if engine_answers():
        return False
    if os.environ.get("DOCKER_HOST"):
        raise Unavailable(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer")
    dockerd = _binary("dockerd", "docker.io")
    if os.geteuid() != 0:
        raise Unavailable("no Docker engine answers and starting dockerd needs root")
    ENGINE_LOG.parent.mkdir(parents=True, exist_ok=True)
    with ENGINE_LOG.open("ab") as log:
        proc = subprocess.Popen(
            [dockerd, "--iptables=false", "--bridge=none", f"--pidfile={PIDFILE}",
             f"--host={SOCKET}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if engine_answers():
            return True
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = ENGINE_LOG.read_text(errors="replace").splitlines()[-5:]
    if proc.poll() is None:
        proc.terminate()
    raise Unavailable("dockerd did not start: " + " | ".join(tail))


def stop_engine(deadline_s: float = 60) -> bool:
    """Stop the dockerd that ensure_engine started (its pidfile); False when none runs."""
    try:
        pid = int(PIDFILE.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return False
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if _exited(pid):
            return True
        time.sleep(0.2)
    raise RuntimeError(f"dockerd (pid {pid}) still runs after {deadline_s} s")


def _exited(pid: int) -> bool:
    """True once ``pid`` has exited. When this process started it (ensure_engine), an exited
    dockerd stays a zombie that ``kill(pid, 0)`` still finds until it is reaped here."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:  # not our child: someone else reaps it
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def image_exists(tag: str) -> bool:
    return bool(docker("images", "-q", tag).strip())


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org."""
    files = [*sorted(sources.glob("sources.list.d/*.sources")), sources / "sources.list"]
    for path in files:
        text = path.read_text() if path.is_file() else ""
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.M)
        uris += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.M)
        for uri in uris:
            if "security" not in uri:
                return str(uri)
    return DEFAULT_MIRROR


def ensure_base(rebuild: bool = False) -> None:
    """BASE_IMAGE: Debian minbase with Python 3.11, made once and then reused."""
    if not rebuild and image_exists(BASE_IMAGE):
        return
    debootstrap = _binary("debootstrap", "debootstrap")
    with tempfile.TemporaryDirectory(prefix="sidetask-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [debootstrap, "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
             SUITE, str(rootfs), debian_mirror()],
            check=True, stdout=subprocess.DEVNULL, timeout=900,
        )  # fmt: skip
        # apt's package cache and lists: images that install more run apt-get update
        for cache in ("var/cache/apt", "var/lib/apt/lists"):
            for item in (rootfs / cache).rglob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [_binary("docker", "docker.io"), "import",
             "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--change", 'CMD ["python3"]', "-", BASE_IMAGE],
            stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL, timeout=300,
        )  # fmt: skip
        if tar.wait() != 0:
            raise RuntimeError("tar of the base root filesystem failed")


def pip_config() -> dict[str, str]:
    """pip's effective settings here (`pip config list`; environment last, as pip does)."""
    pips = [[sys.executable, "-m", "pip"]] + [[p] for p in filter(None, [shutil.which("pip3")])]
    listed = ""
    for pip in pips:  # this Python's pip, else the one on PATH
        listed = subprocess.run(
            [*pip, "config", "list"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
        if listed:
            break
    found: dict[str, str] = {}
    for scope in ("global", "user", "site", ":env:"):
        for key, value in re.findall(rf"^{re.escape(scope)}\.([\w-]+)='(.*)'$", listed, re.M):
            found[key] = value
    return found


def dockerfile_arg(dockerfile: Path, name: str) -> str:
    """The default of ``ARG name=...`` in a Dockerfile (one source for pinned versions)."""
    found = re.search(rf"^ARG {name}=(\S+)$", dockerfile.read_text(), re.M)
    if found is None:
        raise ValueError(f"{dockerfile}: no ARG {name}=...")
    return found[1]


def stage_extras(
    dockerfile: Path, extras: Path = EXTRAS, config: dict[str, str] | None = None
) -> dict[str, str]:
    """Put this machine's CA bundle and CPU torch wheel (as pip's ``config`` names them) in
    ``extras``; the build arguments that make pip in the build use them. The wheel is
    linked, not copied, where the filesystem allows."""
    for item in extras.iterdir():
        if item.name not in ("README.md", ".gitignore"):
            item.unlink()
    config = pip_config() if config is None else config
    args: dict[str, str] = {}
    cert = Path(config.get("cert", "/etc/ssl/certs/ca-certificates.crt"))
    if cert.is_file():
        shutil.copyfile(cert, extras / "ca-certificates.crt")
        args["PIP_CERT"] = f"{EXTRAS_IN_IMAGE}/ca-certificates.crt"
    torch = dockerfile_arg(dockerfile, "TORCH_VERSION")
    folders = [Path(f) for f in config.get("find-links", "").split() if Path(f).is_dir()]
    wheels = [w for f in folders for w in sorted(f.glob(f"torch-{torch}+cpu-cp311-*.whl"))]
    if wheels:
        try:
            os.link(wheels[0], extras / wheels[0].name)
        except OSError:
            shutil.copyfile(wheels[0], extras / wheels[0].name)
        args["PIP_FIND_LINKS"] = EXTRAS_IN_IMAGE
        # the rest of torch's requirements come from PyPI, which this machine reaches
        args["TORCH_INDEX"] = "https://pypi.org/simple"
    return args


def build(
    dockerfile: Path,
    tag: str,
    args: dict[str, str],
    context: Path = ROOT,
    target: str | None = None,
    timeout: float = 1800,
) -> float:
    """Legacy builder (BuildKit would fetch its frontend from a registry), host network,
    cached layers, our label. Seconds it took; the build's own output goes to stdout."""
    flags = [f"--build-arg={k}={v}" for k, v in sorted(args.items())]
    if target:
        flags.append(f"--target={target}")
    command = [_binary("docker", "docker.io"), "build", "--network=host", "-f", str(dockerfile),
               "-t", tag, f"--label={LABEL}", *flags, str(context)]  # fmt: skip
    start = time.monotonic()
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    subprocess.run(command, check=True, timeout=timeout, env=env)
    return time.monotonic() - start


def build_cpu_image(tag: str = CPU_IMAGE) -> float:
    """Base and ``tag`` from docker/Dockerfile; seconds the image build took.

    The deps stage is tagged too: its layers are the cache (torch, the dependencies) that a
    rebuild after a code change reuses, and the tag keeps them through prune_old().
    """
    ensure_base()
    dockerfile = DOCKER_DIR / "Dockerfile"
    args = {"PYTHON_IMAGE": BASE_IMAGE, **stage_extras(dockerfile)}
    seconds = build(dockerfile, DEPS_STAGE, args, target="deps")
    seconds += build(dockerfile, tag, args)
    prune_old()
    return seconds


def prune_old() -> None:
    """Drop the untagged images earlier builds of ours left (each holds a GB-sized venv
    layer); images of anyone else are left alone."""
    docker("image", "prune", "--force", f"--filter=label={LABEL}", timeout=300)


def build_compose_images() -> None:
    ensure_base()
    for tag, dockerfile in COMPOSE_IMAGES.items():
        build(dockerfile, tag, {"BASE_IMAGE": BASE_IMAGE}, context=dockerfile.parent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "what", choices=["engine", "base", "image", "compose-images", "stop-engine"]
    )
    parser.add_argument("--tag", default=CPU_IMAGE, help="tag of the CPU image (image)")
    options = parser.parse_args(argv)
    what = options.what
    if what == "stop-engine":
        print("dockerd stopped" if stop_engine() else f"no dockerd of ours ({PIDFILE})")
        return 0
    try:
        if ensure_engine():
            print(f"started dockerd (log {ENGINE_LOG}); stop it with: "
                  f"python3 docker/local_build.py stop-engine")  # fmt: skip
    except Unavailable as why:
        print(f"error: {why}", file=sys.stderr)
        return 1
    if what == "base":
        ensure_base(rebuild=True)
    elif what == "image":
        seconds = build_cpu_image(options.tag)
        print(f"built {options.tag} in {seconds:.0f} s")
    elif what == "compose-images":
        build_cpu_image()
        build_compose_images()
    return 0


if __name__ == "__main__":
    sys.exit(main())
