#!/usr/bin/env bash
# System tools the deployment, metrics, load and browser tests drive for real: nginx (the load
# balancer), Prometheus + promtool, the hey load generator, Chromium (the /ui playground) and
# kubectl (kubectl kustomize renders deploy/k8s), Docker (docker.io, docker-compose,
# debootstrap: the images built and run for real). Installs the missing ones
# with apt-get where it can (as root, or with passwordless sudo); elsewhere it says what is
# missing and the tests that need them skip, with the reason printed by `pytest -rs`.
set -uo pipefail
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v hey >/dev/null 2>&1 || need+=(hey)
# Chromium drives the /ui playground test; kubectl renders deploy/k8s (kubectl kustomize).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v kubectl >/dev/null 2>&1 || need+=(kubectl)
# Docker for real (make image, tests/deploy/test_docker_run.py, test_compose_up.py): the engine,
# Debian's docker-compose, and debootstrap for the base image (no registry to pull one from).
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "installing ${need[*]} for the deployment tests"
    $SUDO apt-get update -qq
    missing=()
    for pkg in "${need[@]}"; do  # one at a time: a package this mirror lacks blocks no other
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            "$pkg" >/dev/null || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && exit 0
    need=("${missing[@]}")
fi
echo "warning: ${need[*]} missing and not installable here: the tests that drive them" \
     "will skip (see the skip reasons below; Debian/Ubuntu: apt-get install ${need[*]})"
exit 0
