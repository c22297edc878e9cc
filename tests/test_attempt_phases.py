"""The attempt's state machine (bzzz/claim/attempt.py): its one table and its typed values."""

import pytest

from bzzz.claim.attempt import (TRANSITIONS, IllegalTransition, Phase, Status, Stop, StopReason,
                                next_phase)


def test_phases_show_as_the_status_api_states():
    assert [p.value for p in Phase] == ["claiming", "claimed", "preparing", "running",
                                        "asking for help", "reporting", "done"]


def test_every_phase_can_end_and_done_is_final():
    assert set(TRANSITIONS) == set(Phase)
    for phase in Phase:
        if phase is not Phase.DONE:
            assert next_phase(phase, Phase.DONE) is Phase.DONE
    assert TRANSITIONS[Phase.DONE] == frozenset()


def test_illegal_moves_raise():
    with pytest.raises(IllegalTransition):
        next_phase(Phase.CLAIMING, Phase.RUNNING)
    with pytest.raises(IllegalTransition):
        next_phase(Phase.REPORTING, Phase.RUNNING)
    with pytest.raises(IllegalTransition):
        next_phase(Phase.DONE, Phase.CLAIMING)


def test_the_usual_path_is_legal():
    phase = Phase.CLAIMING
    for to in (Phase.CLAIMED, Phase.PREPARING, Phase.RUNNING, Phase.ASKING_FOR_HELP,
               Phase.REPORTING, Phase.DONE):
        phase = next_phase(phase, to)


def test_statuses_keep_their_strings():
    assert {s.value for s in Status} == {"succeeded", "failed", "timeout", "refused",
                                         "cancelled", "asked"}
    assert Status("timeout") is Status.TIMEOUT


def test_stop_reasons_say_what_they_said():
    assert str(StopReason(Stop.LEASE_LOST)) == "its claim was taken over (lease lost)"
    assert str(StopReason(Stop.CANCELLED, "lease-keeper")) == "cancelled by @lease-keeper"
    assert StopReason(Stop.CANCELLED, "lease-keeper").kind is not Stop.LEASE_LOST
