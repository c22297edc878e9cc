"""The commit a delivery writes (bzzz/claim/delivery.py commit_message)."""

from bzzz.claim.delivery import commit_message
from bzzz.devhub.state import closing_references
from bzzz.github.markers import defuse_closing
from bzzz.repo.taskcommits import clean_message
from bzzz.claim.task import parse_issue


def task(login="alice", uid=42, title="Fix the typo"):
    return parse_issue("o/r", {
        "number": 7, "title": title, "body": "", "state": "open", "labels": [],
        "created_at": "2026-11-20T10:00:00Z", "updated_at": "2026-11-20T10:00:00Z",
        "assignees": [], "user": {"login": login, "id": uid}})


def test_title_summary_and_trailers_with_the_author_as_co_author():
    m = commit_message(task(), "Fixed it.\n", "n1", "bot")
    assert m == ("Fix the typo\n\nFixed it.\n\nBzzz-Issue: o/r#7\nBzzz-Node: n1\n"
                 "Co-authored-by: alice <42+alice@users.noreply.github.com>\n")


def test_no_co_author_for_the_agents_own_login_or_a_strange_one():
    assert "Co-authored-by" not in commit_message(task(login="bot"), "", "n1", "bot")
    assert "Co-authored-by" not in commit_message(task(login="a b>\nX"), "", "n1", "bot")
    m = commit_message(task(uid=0), "", "n1", "bot")  # no id: the older address
    assert m.endswith("Co-authored-by: alice <alice@users.noreply.github.com>\n")
    assert m.startswith("Fix the typo\n\nBzzz-Issue")  # no empty summary paragraph


def test_the_tasks_words_close_no_issue_when_merged():
    """A task's summary (or a kept commit's message) saying ``Fixes #3`` would close issue 3
    when a person merges the pull request: it is defused to a mention, by the same reading
    devhub closes issues with (GitHub's closing keywords)."""
    words = ("Fixes #3, closes: o/r#4 and resolved https://github.com/o/r/issues/5; "
             "FIX #6. See #8, prefix#9.")
    assert closing_references([words], "o/r") == [3, 4, 5, 6]
    m = commit_message(task(), words, "n1", "bot")
    assert closing_references([m], "o/r") == []
    assert "Fixes issue #3" in m and "See #8" in m
    assert closing_references([defuse_closing(words)], "o/r") == []
    assert clean_message(words.encode()) == defuse_closing(words)
