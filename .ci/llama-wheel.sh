#!/usr/bin/env bash
# A wheel of llama-cpp-python (llama.cpp's server behind an OpenAI-compatible API), which
# the tests run as a real inference engine. PyPI has no binary wheel of it for this
# platform and building it from source takes minutes, so the wheel is built once into a
# cache outside the repository, where every clone on the machine finds it.
#
#   bash .ci/llama-wheel.sh [VENV]
#
# Prints the wheel's path. With VENV (e.g. .venv), also installs the wheel and its
# `[server]` extra's dependencies into that virtual environment, unless that version is
# already there. Idempotent; with a warm cache and an installed venv it takes well under a
# second. Concurrent runs wait for each other's build instead of building twice.
#
# BZZZ_WHEEL_CACHE overrides the cache directory (default ~/.cache/bzzz/wheels).
set -euo pipefail

VERSION=0.3.36
DIST=llama_cpp_python
CACHE="${BZZZ_WHEEL_CACHE:-$HOME/.cache/bzzz/wheels}"
VENV="${1:-}"

say() { echo "llama-wheel: $*" >&2; }

if [ -n "$VENV" ]; then
    PY="$VENV/bin/python"
    if [ ! -x "$PY" ]; then
        say "no Python at $PY (create the venv first)"
        exit 1
    fi
else
    PY="${PYTHON:-python3}"
fi

# llama-cpp-python loads its compiled library through ctypes, so its wheel is tagged
# py3-none-linux_ARCH (fits any Python 3 on this architecture); a build tagged for one
# interpreter (cpXY-cpXY) would do too.
ARCH=$(uname -m)

find_wheel() {
    local w pytag
    w="$CACHE/$DIST-$VERSION-py3-none-linux_$ARCH.whl"
    if [ -f "$w" ]; then
        echo "$w"
        return 0
    fi
    pytag=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
    w="$CACHE/$DIST-$VERSION-$pytag-$pytag-linux_$ARCH.whl"
    if [ -f "$w" ]; then
        echo "$w"
        return 0
    fi
    return 1
}

# Debian packages the build needs on a fresh machine (a C/C++ compiler, cmake, ninja).
build_deps() {
    local missing=()
    command -v g++ >/dev/null 2>&1 || missing+=(g++)
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]}; the build may fail (install them: apt-get install ${missing[*]})"
        return 0
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
    mkdir -p "$CACHE"
    # One build at a time: a second run waits here, then finds the first one's wheel.
    exec 9>"$CACHE/.llama-wheel.lock"
    if ! flock -n 9; then
        say "another run is building the wheel; waiting for it"
        flock 9
    fi
    if find_wheel >/dev/null; then
        return 0
    fi
    build_deps
    local log start elapsed step rc
    # In the cache directory itself, so that the final move is a rename on one filesystem.
    tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
    pid=""
    # Interrupted: stop the compilers too (the build runs in its own process group).
    trap '[ -n "$pid" ] && kill -- -"$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
    trap 'exit 130' INT TERM
    log="$tmp/build.log"
    say "building llama-cpp-python==$VERSION from source (takes about 5 minutes on 2 cores)"
    start=$SECONDS
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF" \
        setsid "$PY" -m pip wheel --no-deps --no-cache-dir -v -w "$tmp/out" "llama-cpp-python==$VERSION" \
        >"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        kill -0 "$pid" 2>/dev/null || break
        elapsed=$((SECONDS - start))
        step=$(grep -o '\[[0-9]*/[0-9]*\]' "$log" | tail -n 1 || true)
        say "still building (${elapsed}s${step:+, compile step $step})"
    done
    rc=0
    wait "$pid" || rc=$?
    pid=""
    if [ "$rc" -ne 0 ]; then
        say "build failed after $((SECONDS - start))s; the end of its log:"
        tail -n 40 "$log" >&2
        exit 1
    fi
    local built
    built=$(ls "$tmp/out"/$DIST-$VERSION-*.whl 2>/dev/null | head -n 1 || true)
    if [ -z "$built" ]; then
        say "pip made no wheel; the end of its log:"
        tail -n 40 "$log" >&2
        exit 1
    fi
    mv -f "$built" "$CACHE/"
    say "built $(basename "$built") in $((SECONDS - start))s"
    rm -rf "$tmp"
    trap - EXIT INT TERM
}

# Whether the venv already has this version and every requirement of its [server] extra.
installed() {
    "$PY" - "$VERSION" <<'EOF' 2>/dev/null
import sys
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement

try:
    if metadata.version("llama_cpp_python") != sys.argv[1]:
        sys.exit(1)
    for line in metadata.requires("llama_cpp_python") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": "server"}):
            continue
        if not req.specifier.contains(metadata.version(req.name), prereleases=True):
            sys.exit(1)
except metadata.PackageNotFoundError:
    sys.exit(1)
EOF
}

if ! WHEEL=$(find_wheel); then
    build
    if ! WHEEL=$(find_wheel); then
        say "the wheel built is not one for this Python and architecture:"
        ls "$CACHE"/$DIST-$VERSION-*.whl >&2 || true
        exit 1
    fi
fi

if [ -n "$VENV" ] && ! installed; then
    say "installing $(basename "$WHEEL") with its [server] extra into $VENV"
    "$PY" -m pip install -q "${WHEEL}[server]"
fi
echo "$WHEEL"
