#!/usr/bin/env bash
# GitHub's published REST description (github/rest-api-description, as npm ships it in
# @octokit/openapi and @octokit/openapi-webhooks), which tests/test_devhub_conformance.py
# validates devhub's answers and webhook payloads against. The packages unpack to some
# 420 MB (every GitHub Enterprise version, dereferenced copies); the test needs two files
# of theirs (about 7 MB), so only those are kept, once, in a cache outside the repository
# where every clone on the machine finds them.
#
#   bash .ci/github-description.sh
#
# Prints the directory holding rest.json and webhooks.json. Idempotent: with a warm cache
# it does nothing. BZZZ_DESCRIPTION_CACHE overrides the cache directory (default
# ~/.cache/bzzz/github-description).
set -euo pipefail

REST_PKG=@octokit/openapi@23.0.2
HOOKS_PKG=@octokit/openapi-webhooks@12.1.0
# the published tarballs' integrity (npm's dist.integrity), pinned like a lock file would
REST_SHA512=pV8M7L9GY23AybNvTmo2nyjmpmnt6+2sRE/tqr0ZLQcPS4lnw7u5eZGNmwRNkBC3D7gZXbFx5AHzLUVRBXGDhg==
HOOKS_SHA512=Z5eDsLCUNbx1zHpZb1LNQirADqdMTvWJQ/deahi0ws+tWWnwHXB+Pr4jfmM9OrETS9Y5iW8ZRu1fdbudObhLrg==
CACHE="${BZZZ_DESCRIPTION_CACHE:-$HOME/.cache/bzzz/github-description}"
DIR="$CACHE/openapi-23.0.2+webhooks-12.1.0"

if [ -f "$DIR/rest.json" ] && [ -f "$DIR/webhooks.json" ]; then
    echo "$DIR"
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "github-description: npm is missing" >&2; exit 1; }
mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/.fetch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# npm pack fetches the published tarballs through npm's own cache and checks their integrity
(cd "$WORK" && npm pack --silent "$REST_PKG" "$HOOKS_PKG" >/dev/null)
check() {
    local got
    got=$(python3 -c 'import base64, hashlib, sys
print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1")
    if [ "$got" != "$2" ]; then
        echo "github-description: $1 does not have the pinned sha512" >&2
        exit 1
    fi
}
check "$WORK"/octokit-openapi-23.0.2.tgz "$REST_SHA512"
check "$WORK"/octokit-openapi-webhooks-12.1.0.tgz "$HOOKS_SHA512"
tar -xzf "$WORK"/octokit-openapi-23.0.2.tgz -C "$WORK" package/generated/api.github.com.json
mv "$WORK/package/generated/api.github.com.json" "$WORK/rest.json"
tar -xzf "$WORK"/octokit-openapi-webhooks-12.1.0.tgz -C "$WORK" \
    package/generated/api.github.com.json
mv "$WORK/package/generated/api.github.com.json" "$WORK/webhooks.json"
mkdir -p "$DIR.tmp.$$"
mv "$WORK/rest.json" "$WORK/webhooks.json" "$DIR.tmp.$$/"
mv -T "$DIR.tmp.$$" "$DIR" 2>/dev/null || rm -rf "$DIR.tmp.$$"  # a concurrent run won
echo "$DIR"
