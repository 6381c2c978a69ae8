#!/usr/bin/env bash
# System tools the deployment, metrics and load tests drive for real: nginx (the load
# balancer), Prometheus + promtool, and the hey load generator. Installs the missing ones
# with apt-get where it can (as root, or with passwordless sudo); elsewhere it says what is
# missing and the tests that need them skip, with the reason printed by `pytest -rs`.
set -uo pipefail
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v hey >/dev/null 2>&1 || need+=(hey)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "installing ${need[*]} for the deployment tests"
    ( $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null ) && exit 0
fi
echo "warning: ${need[*]} missing and not installable here: the nginx, Prometheus and load" \
     "tests will skip (see the skip reasons below; Debian/Ubuntu: apt-get install ${need[*]})"
exit 0
