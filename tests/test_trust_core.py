"""The trust rule and comment commands as pure functions (bzzz/claim/trust.py)."""

from hypothesis import given, strategies as st

from bzzz.claim.report import approval_comment
from bzzz.claim.trust import (CommentView, Verb, approval_state, command_from_comment,
                              inherited_from, is_writer, parse_command, task_digest,
                              voices)

TITLE = "Run the tests"
BODY = "Please run\n\n```bzzz\nmake test\n```\n"
D = task_digest(TITLE, BODY)


def announce(cid, digest=D, who="bot"):
    return CommentView(cid, who, approval_comment(digest, "stranger", "n1").body)


def approve(cid, short, who="maint"):
    return CommentView(cid, who, f"Looks fine.\n/bzzz approve {short}\n")


def test_digest_is_sha256_of_title_nul_body():
    import hashlib
    assert D == hashlib.sha256(f"{TITLE}\0{BODY}".encode()).hexdigest()
    assert task_digest(None, None) == task_digest("", "")
    assert task_digest("", "\ud800") != task_digest("", "")  # a lone surrogate still hashes
    # the title counts, and where it ends is unambiguous (its own NULs are not the task's)
    assert task_digest("Run the tests; rm -rf ~", BODY) != D
    assert task_digest("a", "b") != task_digest("a\0b", "") == task_digest("ab", "")


def test_an_inherits_marker_names_the_origin_and_only_withholds():
    from bzzz.github.markers import defuse_markers
    assert inherited_from("Follow-up of #4.\n<!-- bzzz:inherits:4 -->") == 4
    assert inherited_from("no marker") is None and inherited_from(None) is None
    assert inherited_from("<!-- bzzz:inherits:x -->") is None
    # text a task hands back cannot carry one (nor any other marker)
    assert inherited_from(defuse_markers("<!-- bzzz:inherits:4 -->")) is None


def test_permissions_that_write():
    assert all(is_writer(p) for p in ("admin", "maintain", "write"))
    assert not any(is_writer(p) for p in ("read", "triage", "none", None, ""))
    assert is_writer("read", "maintain") and not is_writer("read", "triage")


def test_commands_parse_at_line_start_only():
    assert parse_command("/bzzz approve abcd1234") == (Verb.APPROVE, "abcd1234")
    assert parse_command("ok\n  /bzzz RETRY now") == (Verb.RETRY, "now")
    # a verb counts at a line's start only; elsewhere "/bzzz" is review feedback, which
    # starts another round only for a task in review (the service decides)
    assert parse_command("please /bzzz cancel") == (Verb.FEEDBACK, "please /bzzz cancel")
    assert parse_command("/bzzz frobnicate") == (Verb.FEEDBACK, "/bzzz frobnicate")
    assert parse_command("Rename it. /bzzz") == (Verb.FEEDBACK, "Rename it. /bzzz")
    assert parse_command("/bzzzcancel") is None
    assert parse_command("see /bzzz/docs and a/bzzz") is None
    assert parse_command("```\n/bzzz redo\n```") is None
    assert parse_command("/bzzz answer use the\nsecond option") == (Verb.ANSWER,
                                                                    "use the\nsecond option")
    assert parse_command(None) is None
    # quoted in a fence, or in an agent's own comment (it has a marker): not a command
    assert parse_command("try\n```\n/bzzz approve abcd1234\n```\n") is None
    assert parse_command("```\nx\n```\n/bzzz retry") == (Verb.RETRY, "")
    assert parse_command(approval_comment("ab" * 32, "x", "n1").body) is None


def test_an_agent_comment_never_approves():
    from bzzz.claim.report import approval_mismatch_comment
    comments = [announce(1), CommentView(2, "bot", approval_mismatch_comment(D, "x", "n1").body)]
    assert not approval_state(D, comments, {"bot"}).approved


def test_command_from_github_comment_json():
    doc = {"id": 7, "user": {"login": "maint"}, "body": "/bzzz cancel",
           "issue_url": "http://x/repos/o/r/issues/12"}
    cmd = command_from_comment("o/r", doc)
    assert (cmd.issue, cmd.comment_id, cmd.author, cmd.verb) == (12, 7, "maint", Verb.CANCEL)
    for bad in ({**doc, "id": "7"}, {**doc, "user": None}, {**doc, "issue_url": 5},
                {**doc, "body": None}, {**doc, "issue_url": "http://x/issues/abc"}):
        assert command_from_comment("o/r", bad) is None


def test_an_approval_after_the_announcement_covers_the_body():
    state = approval_state(D, [announce(1), approve(2, D[:8])], {"bot", "maint"})
    assert state.approved and state.announced and state.approvers == ("maint",)


def test_wrong_hash_or_a_non_writer_approves_nothing():
    assert not approval_state(D, [announce(1), approve(2, "deadbeef")], {"bot", "maint"}).approved
    assert not approval_state(D, [announce(1), approve(2, D[:8], "out")], {"bot", "maint"}).approved
    assert not approval_state(D, [announce(1), approve(2, D[:7])], {"bot", "maint"}).approved


def test_an_announcement_by_a_non_writer_does_not_count():
    # an outsider cannot announce a body: its marker is just text
    state = approval_state(D, [announce(1, who="out"), approve(2, D[:8])], {"maint"})
    assert not state.announced and not state.approved


def test_an_edit_after_approval_needs_a_new_one():
    comments = [announce(1), approve(2, D[:8])]
    edited = BODY + "\nrm -rf ~/.ssh\n"
    state = approval_state(task_digest(TITLE, edited), comments, {"bot", "maint"})
    assert not state.approved and not state.announced
    e = task_digest(TITLE, edited)
    again = comments + [announce(3, e), approve(4, e[:8])]
    assert approval_state(e, again, {"bot", "maint"}).approved
    # and going back to the approved text is approved still
    assert approval_state(D, again, {"bot", "maint"}).approved


def test_a_colliding_short_hash_announced_after_the_approval_is_not_covered():
    """An outsider who finds a body whose hash shares the 8 digits gets nothing: its full
    hash is announced only after the approval."""
    evil = "0" * 64
    fake_digest = D[:8] + evil[8:]
    comments = [announce(1), approve(2, D[:8]), announce(3, fake_digest)]
    state = approval_state(task_digest(TITLE, "whatever"), comments, {"bot", "maint"})
    assert not state.approved
    # the pure function compares full digests: the colliding one is not covered
    assert not approval_state(fake_digest, comments, {"bot", "maint"}).approved


def test_an_approval_before_any_announcement_does_not_count():
    assert not approval_state(D, [approve(1, D[:8]), announce(2)], {"bot", "maint"}).approved


def test_voices_are_announcers_and_approvers():
    comments = [announce(1), approve(2, D[:8]), CommentView(3, "chatty", "+1")]
    assert voices(comments) == {"bot", "maint"}


@given(st.text(max_size=2000), st.lists(st.tuples(st.integers(0, 10**9), st.sampled_from(
    ["a", "b", "c"]), st.text(max_size=300)), max_size=20))
def test_never_raises_on_any_comments(body, raw):
    comments = [CommentView(i, who, text) for i, who, text in raw]
    state = approval_state(task_digest("t", body), comments, {"a"})
    assert state.digest == task_digest("t", body)
    for c in comments:
        parse_command(c.body)


def test_hostile_comments_parse_in_milliseconds():
    """Every comment is parsed, outsiders' too: 16,000 command-like lines took 5 s."""
    import time
    for text in ("/bzzz x\n" * 16000, "```\n/bzzz approve 1\n" * 8000, "```\n" * 30000 + "/bzzz retry"):
        start = time.perf_counter()
        parse_command(text)
        assert time.perf_counter() - start < 0.5
    assert parse_command("```\n" * 30000 + "/bzzz retry") == (Verb.RETRY, "")
    assert parse_command("```\n" * 29999 + "/bzzz retry") is None


async def test_a_comment_brought_twice_at_once_is_acted_on_once():
    """The webhook and a poll may deliver the same comment concurrently."""
    import trio
    from bzzz.claim.intake import CommentIntake, EveryoneActs

    class Writers:
        async def writer(self, repo, login):
            await trio.sleep(0.01)  # a permission lookup: both callers get here
            return True

    calls = []

    async def handler(cmd, acting):
        calls.append(cmd.comment_id)

    intake = CommentIntake(None, Writers(), {"o/r": EveryoneActs()}, handler)
    doc = {"id": 7, "user": {"login": "dev"}, "body": "/bzzz retry",
           "issue_url": "https://x/repos/o/r/issues/3"}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(intake.take, "o/r", doc)
        nursery.start_soon(intake.take, "o/r", doc)
    assert calls == [7]
