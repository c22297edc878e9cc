#!/usr/bin/env bash
# The base image the agent's image is built FROM in the test suite. No image registry is
# reachable here, so it is made locally: Debian bookworm (debootstrap --variant=minbase)
# with python3 (3.11), git, tini and ca-certificates, trimmed (no perl beyond perl-base, no
# documentation, locales or apt lists), imported into podman and saved as an OCI archive
# into a cache outside the repository, where every clone on the machine finds it.
#
#   bash .ci/base-image.sh        # prints the archive's path (builds it if missing)
#
# Building it takes about a minute (debootstrap from the Debian mirror in
# /etc/apt/sources.list[.d]); with a warm cache the script returns at once, and loading the
# archive into podman (`podman load -i ARCHIVE`) takes well under a second. The image it
# holds is tagged localhost/bzzz-base:bookworm. Concurrent runs wait for each other's build
# instead of building twice. Needs root (debootstrap), podman and debootstrap (installed if
# missing: .ci/system-deps.sh lists it).
#
# BZZZ_IMAGE_CACHE overrides the cache directory (default ~/.cache/bzzz/images);
# BZZZ_DEBIAN_MIRROR the mirror.
set -euo pipefail

VERSION=2                      # bump when the recipe below changes: a new archive is built
SUITE=bookworm
TAG=localhost/bzzz-base:$SUITE
CACHE="${BZZZ_IMAGE_CACHE:-$HOME/.cache/bzzz/images}"
ARCHIVE="$CACHE/bzzz-base-$SUITE-v$VERSION.oci.tar"
PACKAGES=python3,git,tini,ca-certificates

say() { echo "base-image: $*" >&2; }

if [ -f "$ARCHIVE" ]; then
    echo "$ARCHIVE"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    say "building the base image needs root (debootstrap); run as root or load an archive into $CACHE"
    exit 1
fi
if ! command -v podman >/dev/null 2>&1; then
    say "podman is not installed (apt-get install podman runc)"
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

mirror() {
    if [ -n "${BZZZ_DEBIAN_MIRROR:-}" ]; then
        echo "$BZZZ_DEBIAN_MIRROR"
        return
    fi
    local m
    # deb822 sources (URIs: ...) or one-line sources (deb URL SUITE ...), the first Debian one
    m=$(grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n 1 || true)
    if [ -z "$m" ]; then
        m=$(grep -h -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{print $2}' | grep -v -- '-security' | head -n 1 || true)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.base-image.lock"
if ! flock -n 9; then
    say "another run is building the base image; waiting for it"
    flock 9
fi
if [ -f "$ARCHIVE" ]; then
    echo "$ARCHIVE"
    exit 0
fi

tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
cleanup() {
    # podman's overlay storage mounts inside $tmp: unmount before removing
    local m
    for m in $(awk -v t="$tmp" 'index($2, t) == 1 {print $2}' /proc/self/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$tmp" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$SECONDS
root="$tmp/root"
say "debootstrap --variant=minbase $SUITE with $PACKAGES from $(mirror) (about a minute)"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$(mirror)" \
        >"$tmp/debootstrap.log" 2>&1; then
    say "debootstrap failed; the end of its log:"
    tail -n 30 "$tmp/debootstrap.log" >&2
    exit 1
fi

# Trim. perl beyond perl-base is only git's porcelain scripts (add -i, send-email, svn): the
# agent uses clone, fetch, checkout, commit and push, which are C. Later apt installs keep
# leaving out documentation and locales (the filter Debian's own container images use).
chroot "$root" dpkg --purge --force-depends perl perl-modules-5.36 libperl5.36 liberror-perl \
    >/dev/null 2>&1 || true
cat >"$root/etc/dpkg/dpkg.cfg.d/bzzz-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/var/cache/apt/"*.bin \
    "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"* "$root/var/log/"*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
# git programs the agent never runs (a server, mail, WebDAV push, dumb HTTP, scalar)
rm -f "$root/usr/lib/git-core/"{git-http-backend,git-http-push,git-http-fetch,git-imap-send,git-shell,scalar} \
    "$root/usr/bin/"{git-shell,scalar}
# glibc's iconv modules for legacy character sets (UTF-8 and ASCII are built in)
find "$root/usr/lib/x86_64-linux-gnu/gconv" -name '*.so' -delete 2>/dev/null || true
# the standard library's 2to3 and pydoc's help topics (Python 3.11 keeps working without)
rm -rf "$root/usr/lib/python3.11/"{lib2to3,pydoc_data}
: >"$root/etc/machine-id"

# Import with a private podman storage (nothing under /etc or /var/lib/containers is touched),
# then save the image as an OCI archive: `podman load -i` restores it anywhere.
cat >"$tmp/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$tmp/storage"
runroot = "$tmp/run"
EOF
export CONTAINERS_STORAGE_CONF="$tmp/storage.conf"
tar -C "$root" -c . | podman import -q --change 'CMD ["python3"]' - "$TAG" >/dev/null
podman save -q --format oci-archive -o "$tmp/base.oci.tar" "$TAG" >/dev/null
podman rmi -f "$TAG" >/dev/null 2>&1 || true
mv -f "$tmp/base.oci.tar" "$ARCHIVE"
find "$CACHE" -maxdepth 1 -name "bzzz-base-$SUITE-v*.oci.tar" -not -name "$(basename "$ARCHIVE")" -delete
say "built $TAG in $((SECONDS - start))s: $ARCHIVE ($(du -m "$ARCHIVE" | cut -f1) MB)"
echo "$ARCHIVE"
