#!/usr/bin/env bash
# The coding-agent CLIs the agent presets run (bzzz/exec/agents/), installed once into a
# cache outside the repository where every clone on the machine finds them: the npm
# packages of Claude Code, Codex and opencode in one prefix, Aider in a virtual environment
# of its own (its pins would fight ours), made with Debian's /usr/bin/python3 so that a
# sandboxed task (which sees /usr, not a user's pyenv) can run it.
#
#   bash .ci/agent-clis.sh            # install what is missing; prints the bin directory
#
# The bin directory holds one link per CLI (claude, codex, opencode, aider); an agent finds
# them there through `agent_path`, the tests through bzzz/testing/agentclis.py. Idempotent:
# a stamp per CLI names the version installed, so a warm cache costs well under a second.
# Concurrent runs wait for each other.
#
# BZZZ_CLI_CACHE overrides the cache directory (default /var/cache/bzzz/agent-clis for root,
# whose tasks run as another user and must be able to read it; ~/.cache/bzzz/agent-clis
# otherwise).
set -euo pipefail

CLAUDE_VERSION=2.1.337
CODEX_VERSION=0.171.0
OPENCODE_VERSION=1.18.33
AIDER_VERSION=0.86.2

if [ -n "${BZZZ_CLI_CACHE:-}" ]; then
    CACHE="$BZZZ_CLI_CACHE"
elif [ "$(id -u)" -eq 0 ]; then
    CACHE=/var/cache/bzzz/agent-clis
else
    CACHE="$HOME/.cache/bzzz/agent-clis"
fi

say() { echo "agent-clis: $*" >&2; }

mkdir -p "$CACHE/bin"
chmod 0755 "$CACHE" "$CACHE/bin"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
    say "another run is installing; waiting for it"
    flock 9
fi

stamped() { [ -f "$CACHE/.$1" ] && [ "$(cat "$CACHE/.$1")" = "$2" ]; }

link() {  # link NAME TARGET (relative to the bin directory)
    ln -sfn "$2" "$CACHE/bin/$1"
}

npm_cli() {  # npm_cli NAME PACKAGE VERSION BIN
    local name=$1 pkg=$2 version=$3 bin=$4 start=$SECONDS
    if stamped "$name" "$version" && [ -x "$CACHE/npm/$name/node_modules/.bin/$bin" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        say "npm is missing (make system-deps installs it); $name not installed"
        return 1
    fi
    say "installing $pkg@$version"
    rm -rf "$CACHE/npm/$name"
    mkdir -p "$CACHE/npm/$name"
    # one prefix per CLI: each is bound into the sandbox alone
    (cd "$CACHE/npm/$name" && echo '{"private": true}' >package.json &&
        npm install --no-audit --no-fund --loglevel=error --no-save "$pkg@$version" >&2)
    chmod -R a+rX "$CACHE/npm/$name"
    echo "$version" >"$CACHE/.$name"
    link "$bin" "../npm/$name/node_modules/.bin/$bin"
    say "$pkg@$version in $((SECONDS - start))s ($(du -sh "$CACHE/npm/$name" | cut -f1))"
}

aider() {
    local start=$SECONDS venv="$CACHE/aider"
    if stamped aider "$AIDER_VERSION" && [ -x "$venv/bin/aider" ]; then
        return 0
    fi
    if ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
        say "Debian's python3 has no venv module (apt-get install python3-venv); aider not installed"
        return 1
    fi
    say "installing aider-chat==$AIDER_VERSION"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    # (pip's notes on configured index locations that do not exist here are left out)
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        "aider-chat==$AIDER_VERSION" 2>&1 | { grep -v '^WARNING: Location' || true; } >&2
    chmod -R a+rX "$venv"
    echo "$AIDER_VERSION" >"$CACHE/.aider"
    link aider ../aider/bin/aider
    say "aider-chat==$AIDER_VERSION in $((SECONDS - start))s ($(du -sh "$venv" | cut -f1))"
}

rc=0
npm_cli claude @anthropic-ai/claude-code "$CLAUDE_VERSION" claude || rc=1
npm_cli codex @openai/codex "$CODEX_VERSION" codex || rc=1
npm_cli opencode opencode-ai "$OPENCODE_VERSION" opencode || rc=1
aider || rc=1
echo "$CACHE/bin"
exit $rc
