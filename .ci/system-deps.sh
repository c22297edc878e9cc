#!/usr/bin/env bash
# Debian packages the test suite needs: iproute2 (network namespaces), Node.js and npm
# (the js-libp2p interop peer), bubblewrap (the bwrap task sandbox), podman with runc
# (the container sandbox's engine in tests), busybox-static (the tests' task image),
# uidmap (user namespaces for podman), chromium (the Mesh Visualizer's page tests, driven
# headless by Playwright), debootstrap (the local base image of the agent's image:
# .ci/base-image.sh) and prometheus (a real server and promtool for the metrics,
# scrape-config and dashboard-query tests), curl and Debian's python3 (the task gateway's
# tests: the forwarder inside a sandbox runs with /usr/bin/python3). Installs only what is
# missing; needs root.
set -euo pipefail
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v newuidmap >/dev/null 2>&1 || missing+=(uidmap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/python3 ] || missing+=(python3)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing ${missing[*]} and not root; install them (apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
