"""What a node says of its coding-agent presets (#22 item 8): the CLI version asked once
(bzzz/exec/agents/versions.py), the status document's ``agent_presets``, ``bzzz status``'s
lines, and the optional ``presets`` of the capability announcement (older peers' announcements
without it still parse)."""

from __future__ import annotations

import msgpack
import pytest
import trio

from bzzz.cli import preset_lines
from bzzz.exec.agents import PRESETS, Installed
from bzzz.exec.agents.versions import (UNKNOWN, announced, cli_version, describe, first_line,
                                       probe)
from bzzz.p2p import envelope
from bzzz.p2p.envelope import Announcement, EnvelopeError

ME = "12D3KooWTest"
NOW = 1_000_000.0


def _cli(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _installed(exe, name="claude-code"):
    return Installed(PRESETS[name], exe, None, "scripted", "claude", "http://gw/llm/claude")


def test_the_version_is_the_first_line_asked_once_bounded(tmp_path):
    ok = _cli(tmp_path, "claude", 'echo; echo "2.0.14 (Claude Code)"; echo more; '
              'touch "$HOME/.claude.json"')
    assert cli_version(ok) == "2.0.14 (Claude Code)"
    assert not (tmp_path / ".claude.json").exists()  # its HOME was its own
    assert cli_version(_cli(tmp_path, "bad", "echo oops; exit 3")) == UNKNOWN
    assert cli_version(_cli(tmp_path, "slow", "exec sleep 30"), timeout=0.5) == UNKNOWN
    assert cli_version(tmp_path / "absent") == UNKNOWN
    assert first_line(b"\x1b[1mv" + b"9" * 500 + b"\n") .startswith("[1mv999")
    assert len(first_line(b"v" * 10_000)) == 64
    assert first_line(b"\n\n") == UNKNOWN


def test_probe_asks_every_cli_at_once(tmp_path):
    presets = {"claude-code": _installed(_cli(tmp_path, "claude", "echo 2.0.14")),
               "aider": _installed(_cli(tmp_path, "aider", "echo aider 0.86.1"), "aider")}
    assert trio.run(probe, presets) == {"claude-code": "2.0.14", "aider": "aider 0.86.1"}


def test_status_document_and_bzzz_status_lines(tmp_path):
    exe = _cli(tmp_path, "claude", "echo 2.0.14")
    presets = {"claude-code": _installed(exe)}
    doc = describe(presets, {"claude-code": "2.0.14"}, {"codex": "`codex` is not installed"})
    assert doc == [{"preset": "claude-code", "cli": str(exe), "version": "2.0.14",
                    "model": "scripted", "route": "claude"},
                   {"preset": "codex", "error": "`codex` is not installed"}]
    assert describe(presets, {})[0]["version"] is None  # not asked yet
    lines = preset_lines(doc)
    assert lines[0] == "agents    2"
    assert "claude-code" in lines[1] and "2.0.14" in lines[1] and "model scripted via claude" \
        in lines[1]
    assert lines[2].strip() == "codex        not run: `codex` is not installed"
    assert preset_lines([]) == [] and preset_lines(["odd", {"preset": "x"}])[0] == "agents    2"
    assert announced(presets, {"claude-code": "2.0.14"}) == [
        "claude-code 2.0.14 · model scripted via claude"]
    long = announced(presets, {"claude-code": "v" * 300})[0]
    assert len(long) == 120


def _ann(**kw):
    base = dict(peer_id=ME, node_id="n1", ts=NOW, capabilities=("agent:claude-code",),
                addrs=(), log_key="ab" * 32, load=(0, 1), seq=3)
    base.update(kw)
    return Announcement(**base)


def test_the_announcement_carries_presets_only_when_there_are_some():
    with_presets = _ann(presets=("claude-code 2.0.14 · model m via claude",))
    data = envelope.encode_announcement(with_presets)
    assert envelope.parse(data, ME, NOW) == with_presets
    assert "presets" not in msgpack.unpackb(envelope.encode_announcement(_ann()))
    # an older peer's announcement (no presets) parses as before
    raw = msgpack.unpackb(envelope.encode_announcement(_ann()))
    assert envelope.parse(msgpack.packb(raw), ME, NOW).presets == ()
    raw["presets"] = [1, 2]
    with pytest.raises(EnvelopeError):
        envelope.parse(msgpack.packb(raw), ME, NOW)
    raw["presets"] = ["x"] * (envelope.MAX_PRESETS + 1)
    with pytest.raises(EnvelopeError):
        envelope.parse(msgpack.packb(raw), ME, NOW)
