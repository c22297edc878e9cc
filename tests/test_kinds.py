"""Decisions are one enum (bzzz/kinds.py) that writers and the monitor share: every kind a
module writes is a member, and the monitor's tables speak only of members."""

import re
from pathlib import Path

from bzzz.kinds import HOLDING, Decision
from bzzz.monitor import jobs, state, trust

ROOT = Path(__file__).resolve().parent.parent / "bzzz"


def test_no_decision_is_written_by_a_bare_name():
    bare = []
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        bare += [f"{path.name}: {m.group(0)}" for m in re.finditer(r'_decide\(\s*"[a-z_]+"', text)]
        bare += [f"{path.name}: {m.group(0)}"
                 for m in re.finditer(r'decisions\.append\(\{"type": "[a-z_]+"', text)]
    assert bare == []


def test_the_monitor_reads_members_only():
    for kinds in (state.STATE_KINDS, state.HOLDING, trust.CLAIMS, trust.HELD):
        assert all(isinstance(k, Decision) for k in kinds), kinds
    assert HOLDING <= state.STATE_KINDS
    # a decision read back from a log is a plain string: it still finds its table entry
    assert state.decision_state({"type": "claimed"}, False) == "claimed"
    assert jobs.event_of({"type": "pull_request", "pr": 3}, 1).name == "pull_request"


def test_members_are_their_wire_names():
    assert all(d.value == d.name.lower() for d in Decision)
    assert len({d.value for d in Decision}) == len(Decision)
