"""devhub's pull requests as GitHub's REST API has them: documents, listing, review requests,
reviews, review comments, merging (closing keywords), files and commits, webhooks, branch
protection over real smart-HTTP git, and persistence.

Tests that only talk REST (no webhooks, no git client) use ``inproc``, devhub in process with
no socket (bzzz/testing/inprocess.py)."""

import base64
import http.server
import json
import os
import subprocess
import threading
import time

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bzzz.devhub import DevHubThread
from bzzz.devhub.app import DevHubApp
from bzzz.devhub.pulls import diff_lines
from bzzz.devhub.state import Hub, closing_references
from bzzz.testing.inprocess import InProcessDevHub
from bzzz.testing.wait import wait_for

REPO = "/repos/alice/shop"
SEED = {
    "users": [{"login": x, "token": f"t-{x}"}
              for x in ("alice", "bob", "erin", "carol", "tracy", "mallory")],
    "repos": [{"full_name": "alice/shop", "push": ["bob", "erin"], "read": ["carol"],
               "triage": ["tracy"]}],
}


class Receiver:
    """A webhook endpoint that keeps every delivery."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.got.append((self.headers["x-github-event"], json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def pr_events(self, number: int) -> list[tuple[str, str]]:
        return [(e, p["action"]) for e, p in self.got
                if (p.get("pull_request") or {}).get("number") == number]

    def payloads(self, event: str, action: str) -> list[dict]:
        return [p for e, p in self.got if e == event and p["action"] == action]

    def wait(self, predicate, what: str):
        wait_for(lambda: predicate(), 10, what=what)


@pytest.fixture(scope="module")
def hub():
    with DevHubThread(seed=SEED) as d:
        yield d


@pytest.fixture(scope="module")
def inproc():
    with InProcessDevHub(seed=SEED) as d:
        yield d


@pytest.fixture(scope="module")
def hooks(hub):
    receiver = Receiver()
    with api(hub, "alice") as c:
        r = c.post(REPO + "/hooks", json={"config": {"url": receiver.url}, "events": ["*"]})
        assert r.status_code == 201
    yield receiver
    receiver.server.shutdown()


def api(hub, who="bob") -> httpx.Client:
    """A client of either devhub (served or in process)."""
    return hub.client(headers={"Authorization": f"token t-{who}"})


def tip(c, branch="main") -> str:
    return c.get(f"{REPO}/git/ref/heads/{branch}").json()["object"]["sha"]


def commit_on(c, branch: str, files: dict, message="change", parent: str | None = None,
              who="bob") -> str:
    """A commit through the git data API (``files``: path -> content, None deletes), on
    ``branch`` (created from ``parent``, default main, when it does not exist)."""
    exists = c.get(f"{REPO}/git/ref/heads/{branch}").status_code == 200
    base = parent or tip(c, branch if exists else "main")
    tree = c.get(f"{REPO}/git/commits/{base}").json()["tree"]["sha"]
    entries = [{"path": p, "mode": "100644", "type": "blob", **(
        {"content": text} if text is not None else {"sha": None})} for p, text in files.items()]
    r = c.post(REPO + "/git/trees", json={"base_tree": tree, "tree": entries})
    assert r.status_code == 201, r.text
    sha = c.post(REPO + "/git/commits", json={
        "message": message, "tree": r.json()["sha"], "parents": [base],
        "author": {"name": who, "email": f"{who}@users.devhub"}}).json()["sha"]
    if exists:
        r = c.patch(f"{REPO}/git/refs/heads/{branch}", json={"sha": sha, "force": True})
        assert r.status_code == 200, r.text
    else:
        assert c.post(REPO + "/git/refs", json={"ref": f"refs/heads/{branch}",
                                                "sha": sha}).status_code == 201
    return sha


def open_pull(c, branch: str, files: dict | None = None, base="main", **doc) -> dict:
    commit_on(c, branch, files or {f"{branch}.txt": f"{branch}\n"}, f"work on {branch}")
    r = c.post(REPO + "/pulls", json={"title": doc.pop("title", branch), "head": branch,
                                      "base": base, **doc})
    assert r.status_code == 201, r.text
    return r.json()


def new_issue(c, title="an issue") -> int:
    return c.post(REPO + "/issues", json={"title": title}).json()["number"]


def git(*args, cwd=None, token="t-bob", check=True):
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL=os.devnull)
    auth = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    r = subprocess.run(["git", "-c", "user.name=bob", "-c", "user.email=bob@users.devhub",
                        "-c", f"http.extraHeader=Authorization: Basic {auth}", *args],
                       cwd=cwd, capture_output=True, text=True, env=env)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def clone(hub, tmp_path, name="w"):
    work = tmp_path / name
    git("clone", "-q", f"{hub.url}/alice/shop.git", str(work))
    return work


def commit_file(work, path: str, text: str, message: str) -> str:
    (work / path).write_text(text)
    git("add", path, cwd=work)
    git("commit", "-qm", message, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


# ------------------------------------------------------------------ documents and listing


def test_pull_document_and_its_issue(hub, hooks):
    with api(hub) as c:
        main = tip(c)
        pr = open_pull(c, "doc-1", {"doc.txt": "a\nb\n"}, body="the body")
        head = tip(c, "doc-1")
        assert pr["state"] == "open" and pr["draft"] is False and pr["merged"] is False
        assert pr["merged_at"] is None and pr["merged_by"] is None
        assert pr["merge_commit_sha"] is None and pr["requested_reviewers"] == []
        assert pr["user"]["login"] == "bob" and pr["author_association"] == "COLLABORATOR"
        assert pr["title"] == "doc-1" and pr["body"] == "the body"
        assert pr["head"]["ref"] == "doc-1" and pr["head"]["sha"] == head
        assert pr["head"]["label"] == "alice:doc-1" and pr["head"]["repo"]["full_name"] == "alice/shop"
        assert pr["base"]["ref"] == "main" and pr["base"]["sha"] == main
        assert (pr["commits"], pr["additions"], pr["deletions"], pr["changed_files"]) == (1, 2, 0, 1)
        assert pr["mergeable"] is True and pr["mergeable_state"] == "clean"
        assert pr["id"] != c.get(f"{REPO}/issues/{pr['number']}").json()["id"]  # its own id
        issue = c.get(f"{REPO}/issues/{pr['number']}").json()  # the same number is the issue
        assert issue["pull_request"]["url"].endswith(f"/pulls/{pr['number']}")
        assert issue["pull_request"]["merged_at"] is None
        assert c.get(f"{REPO}/pulls/{new_issue(c)}").status_code == 404  # an issue is no pull
        draft = open_pull(c, "doc-2", draft=True)
        assert draft["draft"] is True and draft["mergeable_state"] == "draft"
        bad = c.post(REPO + "/pulls", json={"title": "x", "head": "mallory:doc-1", "base": "main"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "head"
    hooks.wait(lambda: ("pull_request", "opened") in hooks.pr_events(pr["number"]), "opened")
    assert not [p for e, p in hooks.got if e == "issues" and p["issue"]["number"] == pr["number"]]


def test_listing_filters_sorting_paging_and_etag(inproc):
    with api(inproc, "erin") as c:
        made = [open_pull(c, f"list-{i}", base="main") for i in range(3)]
        other = open_pull(c, "list-x", base="list-0")
        c.patch(f"{REPO}/pulls/{made[1]['number']}", json={"state": "closed"})
        inproc.advance_clock()  # updated_at has whole seconds: the edit is a second later
        c.patch(f"{REPO}/pulls/{made[0]['number']}", json={"body": "touched"})

        def numbers(**params):
            r = c.get(REPO + "/pulls", params={"per_page": 100, **params})
            assert r.status_code == 200, r.text
            return [p["number"] for p in r.json()]

        mine = {p["number"] for p in made} | {other["number"]}
        open_ = [n for n in numbers() if n in mine]
        assert open_ == sorted({made[0]["number"], made[2]["number"], other["number"]},
                               reverse=True)  # created, newest first
        assert [n for n in numbers(state="closed") if n in mine] == [made[1]["number"]]
        assert set(numbers(state="all")) >= mine
        assert numbers(head="alice:list-2") == [made[2]["number"]]
        assert numbers(head="list-2") == [made[2]["number"]]
        assert numbers(head="mallory:list-2") == []
        assert numbers(base="list-0") == [other["number"]]
        by_update = [n for n in numbers(sort="updated", state="all") if n in mine]
        assert by_update[-1] == made[0]["number"]  # ascending by default for updated
        assert [n for n in numbers(sort="updated", direction="desc", state="all")
                if n in mine][0] == made[0]["number"]
        assert c.get(REPO + "/pulls", params={"state": "merged"}).status_code == 422
        assert c.get(REPO + "/pulls", params={"sort": "nope"}).status_code == 422
        page = c.get(REPO + "/pulls", params={"state": "all", "per_page": 1})
        assert len(page.json()) == 1 and 'rel="next"' in page.headers["link"]
        first = c.get(REPO + "/pulls", params={"head": "alice:list-2"})
        assert first.json()[0]["head"]["sha"] == tip(c, "list-2")
        etag = first.headers["etag"]
        again = c.get(REPO + "/pulls", params={"head": "alice:list-2"},
                      headers={"If-None-Match": etag})
        assert again.status_code == 304
        c.patch(f"{REPO}/pulls/{made[2]['number']}", json={"title": "renamed"})
        changed = c.get(REPO + "/pulls", params={"head": "alice:list-2"},
                        headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.json()[0]["title"] == "renamed"


# ------------------------------------------------------------------ review requests and reviews


def test_review_requests(hub, hooks):
    with api(hub) as c:
        pr = open_pull(c, "rr-1")
        n = pr["number"]
        url = f"{REPO}/pulls/{n}/requested_reviewers"
        own = c.post(url, json={"reviewers": ["bob"]})
        assert own.status_code == 422
        assert own.json()["message"] == "Review cannot be requested from pull request author."
        outsider = c.post(url, json={"reviewers": ["erin", "mallory"]})
        assert outsider.status_code == 422 and outsider.json()["message"] == (
            "Reviews may only be requested from collaborators. One or more of the users or teams "
            "you specified is not a collaborator of the alice/shop repository.")
        assert c.post(url, json={"reviewers": ["nobody-here"]}).status_code == 422
        assert c.get(url).json() == {"users": [], "teams": []}  # nothing half-done
        ok = c.post(url, json={"reviewers": ["erin", "carol"]})
        assert ok.status_code == 201
        assert [u["login"] for u in ok.json()["requested_reviewers"]] == ["erin", "carol"]
        assert [u["login"] for u in c.get(url).json()["users"]] == ["erin", "carol"]
        removed = c.request("DELETE", url, json={"reviewers": ["carol"]})
        assert removed.status_code == 200
        assert [u["login"] for u in removed.json()["requested_reviewers"]] == ["erin"]
        events = c.get(f"{REPO}/issues/{n}/events").json()
        assert [(e["event"], e["requested_reviewer"]["login"]) for e in events] == [
            ("review_requested", "erin"), ("review_requested", "carol"),
            ("review_request_removed", "carol")]
    with api(hub, "mallory") as c:
        assert c.post(url, json={"reviewers": ["erin"]}).status_code == 403
    with api(hub, "tracy") as c:  # triage may request reviews
        assert c.post(url, json={"reviewers": ["alice"]}).status_code == 201
    hooks.wait(lambda: len(hooks.payloads("pull_request", "review_requested")) >= 3, "requests")
    requested = [p["requested_reviewer"]["login"]
                 for p in hooks.payloads("pull_request", "review_requested")
                 if p["number"] == n]
    assert sorted(requested) == ["alice", "carol", "erin"]  # deliveries run concurrently


def test_reviews(hub, hooks):
    with api(hub) as c:
        pr = open_pull(c, "rev-1")
        n = pr["number"]
        c.post(f"{REPO}/pulls/{n}/requested_reviewers", json={"reviewers": ["erin"]})
        reviews = f"{REPO}/pulls/{n}/reviews"
        own = c.post(reviews, json={"event": "APPROVE"})
        assert own.status_code == 422
        assert own.json()["errors"] == ["Can not approve your own pull request"]
        own = c.post(reviews, json={"event": "REQUEST_CHANGES", "body": "hmm"})
        assert own.status_code == 422
        assert own.json()["errors"] == ["Can not request changes on your own pull request"]
        assert c.post(reviews, json={"event": "COMMENT"}).status_code == 422  # needs a body
        assert c.post(reviews, json={"event": "REQUEST_CHANGES"}).status_code == 422
        assert c.post(reviews, json={"event": "SHIP_IT"}).status_code == 422
        mine = c.post(reviews, json={"event": "COMMENT", "body": "a note"})  # own comment is fine
        assert mine.status_code == 200 and mine.json()["state"] == "COMMENTED"
    with api(hub, "erin") as c:
        assert c.post(reviews, json={"event": "REQUEST_CHANGES"}).status_code == 422
        approved = c.post(reviews, json={"event": "APPROVE"})
        assert approved.status_code == 200
        doc = approved.json()
        assert doc["state"] == "APPROVED" and doc["user"]["login"] == "erin"
        assert doc["commit_id"] == tip(c, "rev-1") and doc["submitted_at"]
        assert doc["author_association"] == "COLLABORATOR"
        assert doc["pull_request_url"].endswith(f"/pulls/{n}")
        assert doc["html_url"].endswith(f"/pull/{n}#pullrequestreview-{doc['id']}")
        assert c.get(f"{REPO}/pulls/{n}").json()["requested_reviewers"] == []  # answered
    with api(hub, "carol") as c:  # read access is enough to review
        pending = c.post(reviews, json={"body": "draft thoughts"})
        assert pending.status_code == 200 and pending.json()["state"] == "PENDING"
        assert "submitted_at" not in pending.json()
        rid = pending.json()["id"]
        again = c.post(reviews, json={"body": "second"})
        assert again.status_code == 422
        assert again.json()["errors"] == ["User can only have one pending review per pull request"]
        assert [r["state"] for r in c.get(reviews).json()] == ["COMMENTED", "APPROVED", "PENDING"]
    with api(hub) as c:
        assert [r["state"] for r in c.get(reviews).json()] == ["COMMENTED", "APPROVED"]
        assert c.get(f"{reviews}/{rid}").status_code == 404  # someone else's draft
    with api(hub, "carol") as c:
        submitted = c.post(f"{reviews}/{rid}/events", json={"event": "COMMENT"})
        assert submitted.status_code == 200 and submitted.json()["state"] == "COMMENTED"
        assert submitted.json()["body"] == "draft thoughts" and submitted.json()["submitted_at"]
        again = c.post(f"{reviews}/{rid}/events", json={"event": "COMMENT"})
        assert again.status_code == 422
        assert c.get(f"{reviews}/{rid}").json()["state"] == "COMMENTED"
        ids = [r["id"] for r in c.get(reviews).json()]
        assert ids == sorted(ids) and len(ids) == 3
        gone = c.post(reviews, json={"body": "scrap this"}).json()["id"]
        assert c.delete(f"{reviews}/{gone}").status_code == 200
        assert c.get(f"{reviews}/{gone}").status_code == 404
    with api(hub) as c:  # a writer dismisses an approval
        erin_review = next(r for r in c.get(reviews).json() if r["user"]["login"] == "erin")
        r = c.put(f"{reviews}/{erin_review['id']}/dismissals", json={"message": "stale"})
        assert r.status_code == 200 and r.json()["state"] == "DISMISSED"
    hooks.wait(lambda: len([p for p in hooks.payloads("pull_request_review", "submitted")
                            if p["pull_request"]["number"] == n]) == 3, "review webhooks")
    submitted = [p for p in hooks.payloads("pull_request_review", "submitted")
                 if p["pull_request"]["number"] == n]
    # a webhook's review state is lower case (GitHub's), the REST answer's upper case
    assert sorted((p["review"]["user"]["login"], p["review"]["state"]) for p in submitted) == [
        ("bob", "commented"), ("carol", "commented"), ("erin", "approved")]


def test_review_comments_and_conversation_comments(hub, hooks):
    with api(hub) as c:
        pr = open_pull(c, "rc-1", {"rc.txt": "one\ntwo\nthree\n"})
        n = pr["number"]
        head = tip(c, "rc-1")
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    with api(hub, "erin") as c:
        url = f"{REPO}/pulls/{n}/comments"
        made = c.post(url, json={"body": "why two?", "commit_id": head, "path": "rc.txt",
                                 "line": 2, "side": "RIGHT"})
        assert made.status_code == 201, made.text
        doc = made.json()
        assert (doc["path"], doc["line"], doc["side"], doc["position"]) == ("rc.txt", 2, "RIGHT", 2)
        assert doc["commit_id"] == head and doc["user"]["login"] == "erin"
        assert doc["diff_hunk"] == "@@ -0,0 +1,3 @@\n+one\n+two"
        assert doc["pull_request_review_id"] and doc["author_association"] == "COLLABORATOR"
        assert doc["html_url"].endswith(f"/pull/{n}#discussion_r{doc['id']}")
        assert doc["created_at"] and doc["updated_at"] and doc["pull_request_url"].endswith(f"/{n}")
        review = c.get(f"{REPO}/pulls/{n}/reviews/{doc['pull_request_review_id']}").json()
        assert review["state"] == "COMMENTED"  # a single comment is a review of its own
        off = c.post(url, json={"body": "x", "commit_id": head, "path": "rc.txt", "line": 9})
        assert off.status_code == 422
        assert off.json()["errors"][0]["message"] == \
            "pull_request_review_thread.line must be part of the diff"
        nowhere = c.post(url, json={"body": "x", "commit_id": head, "path": "README.md", "line": 1})
        assert nowhere.status_code == 422
        assert c.post(url, json={"body": "x", "path": "rc.txt", "line": 1}).status_code == 422
    with api(hub) as c:
        reply = c.post(url, json={"body": "because", "in_reply_to": doc["id"]})
        assert reply.status_code == 201
        assert reply.json()["in_reply_to_id"] == doc["id"] and reply.json()["line"] == 2
        reply2 = c.post(f"{url}/{reply.json()['id']}/replies", json={"body": "ok then"})
        assert reply2.status_code == 201 and reply2.json()["in_reply_to_id"] == doc["id"]
        review = c.post(f"{REPO}/pulls/{n}/reviews", json={
            "event": "COMMENT", "body": "inline", "comments": [
                {"path": "rc.txt", "position": 3, "body": "three!"}]})
        assert review.status_code == 200, review.text
        bad = c.post(f"{REPO}/pulls/{n}/reviews", json={
            "event": "COMMENT", "body": "x", "comments": [{"path": "no.txt", "line": 1,
                                                           "body": "?"}]})
        assert bad.status_code == 422 and bad.json()["errors"] == ["Path could not be resolved"]
        listed = c.get(url).json()
        assert [x["body"] for x in listed] == ["why two?", "because", "ok then", "three!"]
        assert listed[3]["line"] == 3 and listed[3]["pull_request_review_id"] == review.json()["id"]
        conversation = c.post(f"{REPO}/issues/{n}/comments", json={"body": "on the whole"})
        assert conversation.status_code == 201
        issue_comments = [x["body"] for x in c.get(REPO + "/issues/comments").json()]
        assert "on the whole" in issue_comments  # conversation comments are issue comments
        assert not {"why two?", "because", "three!"} & set(issue_comments)
        assert [x["body"] for x in c.get(f"{REPO}/issues/{n}/comments").json()] == ["on the whole"]
        everywhere = c.get(REPO + "/pulls/comments", params={"since": since, "per_page": 100})
        assert [x["body"] for x in everywhere.json() if x["pull_request_url"].endswith(f"/{n}")] \
            == ["why two?", "because", "ok then", "three!"]
        future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        assert c.get(REPO + "/pulls/comments", params={"since": future}).json() == []
        newest = c.get(REPO + "/pulls/comments", params={"sort": "created", "direction": "desc"})
        ids = [x["id"] for x in newest.json()]
        assert ids == sorted(ids, reverse=True)
        one = c.get(f"{REPO}/pulls/comments/{doc['id']}")
        assert one.status_code == 200 and one.json()["body"] == "why two?"
    with api(hub, "carol") as c:  # pending review comments are the reviewer's draft
        c.post(f"{REPO}/pulls/{n}/reviews", json={"comments": [
            {"path": "rc.txt", "line": 1, "body": "draft note"}]})
        assert "draft note" not in [x["body"] for x in c.get(url).json()]
        assert c.patch(f"{REPO}/pulls/comments/{doc['id']}", json={"body": "mine"}).status_code \
            == 403
    with api(hub, "erin") as c:
        edited = c.patch(f"{REPO}/pulls/comments/{doc['id']}", json={"body": "why 2?"})
        assert edited.status_code == 200 and edited.json()["body"] == "why 2?"
    with api(hub, "carol") as c:
        assert c.delete(f"{REPO}/pulls/comments/{reply2.json()['id']}").status_code == 403
    with api(hub) as c:
        assert c.delete(f"{REPO}/pulls/comments/{reply2.json()['id']}").status_code == 204
    hooks.wait(lambda: len([p for p in hooks.payloads("pull_request_review_comment", "created")
                            if p["pull_request"]["number"] == n]) == 4, "comment webhooks")
    created = hooks.payloads("pull_request_review_comment", "created")
    assert sorted(p["comment"]["body"] for p in created if p["pull_request"]["number"] == n) == [
        "because", "ok then", "three!", "why two?"]  # a submitted review's comments too
    assert any(p["issue"]["number"] == n and "pull_request" in p["issue"]
               for p in hooks.payloads("issue_comment", "created"))


# ------------------------------------------------------------------ files and commits


def test_files_and_commits(inproc):
    with api(inproc) as c:
        commit_on(c, "files-base", {"old.txt": "1\n2\n3\n", "gone.txt": "bye\n",
                                    "keep.txt": "a\nb\nc\nd\ne\nf\n"}, "base files")
        c1 = commit_on(c, "files-head", {"new.txt": "fresh\n", "old.txt": "1\ntwo\n3\n"},
                       "first: add and modify", parent=tip(c, "files-base"))
        commit_on(c, "files-head", {"gone.txt": None}, "second: delete")
        c3 = commit_on(c, "files-head", {"keep.txt": None, "moved.txt": "a\nb\nc\nd\ne\nf\n"},
                       "third: rename", who="erin")
        pr = c.post(REPO + "/pulls", json={"title": "files", "head": "files-head",
                                           "base": "files-base"}).json()
        n = pr["number"]
        files = {f["filename"]: f for f in c.get(f"{REPO}/pulls/{n}/files").json()}
        assert {k: f["status"] for k, f in files.items()} == {
            "new.txt": "added", "old.txt": "modified", "gone.txt": "removed",
            "moved.txt": "renamed"}
        assert files["moved.txt"]["previous_filename"] == "keep.txt"
        old = files["old.txt"]
        assert (old["additions"], old["deletions"], old["changes"]) == (1, 1, 2)
        assert old["patch"] == "@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3"
        assert files["gone.txt"]["deletions"] == 1 and files["new.txt"]["additions"] == 1
        assert files["new.txt"]["blob_url"].endswith(f"/blob/{c3}/new.txt")
        commits = c.get(f"{REPO}/pulls/{n}/commits").json()
        assert [x["commit"]["message"] for x in commits] == [
            "first: add and modify", "second: delete", "third: rename"]
        assert commits[0]["sha"] == c1 and commits[-1]["sha"] == c3
        assert commits[0]["author"]["login"] == "bob" and commits[-1]["author"]["login"] == "erin"
        assert commits[0]["commit"]["author"]["email"] == "bob@users.devhub"
        assert commits[1]["parents"][0]["sha"] == c1
        assert pr["commits"] == 3 and pr["changed_files"] == 4
        paged = c.get(f"{REPO}/pulls/{n}/commits", params={"per_page": 2})
        assert len(paged.json()) == 2 and 'rel="next"' in paged.headers["link"]


def test_diff_positions_follow_githubs_rule():
    entries, _ = diff_lines("@@ -1,2 +1,2 @@\n a\n-b\n+B\n@@ -9,1 +9,2 @@\n i\n+j")
    assert [(e["position"], e["kind"], e["left"], e["right"]) for e in entries] == [
        (1, " ", 1, 1), (2, "-", 2, None), (3, "+", None, 2), (5, " ", 9, 9), (6, "+", None, 10)]


def test_closing_keywords():
    text = ("Fixes #1, closes: #2 and Resolved alice/shop#3; see #4; refixes #5; "
            "fix other/repo#6; CLOSE http://devhub.test/alice/shop/issues/7")
    assert closing_references([text, "resolves #8", None], "alice/shop") == [1, 2, 3, 7, 8]


# ------------------------------------------------------------------ merging


def test_merge_refusals(inproc):
    with api(inproc) as c:
        draft = open_pull(c, "m-draft", draft=True)
        r = c.put(f"{REPO}/pulls/{draft['number']}/merge")
        assert r.status_code == 405 and r.json()["message"] == "Pull Request is still a draft"
        pr = open_pull(c, "m-sha")
        n = pr["number"]
        r = c.put(f"{REPO}/pulls/{n}/merge", json={"sha": "0" * 40})
        assert r.status_code == 409
        assert r.json()["message"] == "Head branch was modified. Review and try the merge again."
        assert c.put(f"{REPO}/pulls/{n}/merge", json={"merge_method": "fast"}).status_code == 422
        assert c.get(f"{REPO}/pulls/{n}/merge").status_code == 404  # not merged
    with api(inproc, "carol") as c:  # read access cannot merge
        assert c.put(f"{REPO}/pulls/{n}/merge").status_code == 403
    with api(inproc) as c:
        a = open_pull(c, "m-conflict-a", {"same.txt": "from a\n"})
        b = open_pull(c, "m-conflict-b", {"same.txt": "from b\n"})
        assert c.put(f"{REPO}/pulls/{a['number']}/merge").status_code == 200
        assert c.get(f"{REPO}/pulls/{b['number']}").json()["mergeable"] is False
        r = c.put(f"{REPO}/pulls/{b['number']}/merge")
        assert r.status_code == 405 and r.json()["message"] == "Merge conflict"
        r = c.put(f"{REPO}/pulls/{a['number']}/merge")
        assert r.status_code == 405 and r.json()["message"] == "Pull Request is not mergeable"
        c.patch(f"{REPO}/pulls/{n}", json={"state": "closed"})
        assert c.put(f"{REPO}/pulls/{n}/merge").status_code == 405


def test_merge_closes_referenced_issues(hub, hooks):
    with api(hub) as c:
        fixed, by_commit, mentioned = new_issue(c, "fixed"), new_issue(c, "by commit"), \
            new_issue(c, "mentioned")
        commit_on(c, "m-ok", {"ok.txt": "ok\n"}, f"the work\n\nResolves #{by_commit}")
        pr = c.post(REPO + "/pulls", json={
            "title": "Merge me", "head": "m-ok", "base": "main",
            "body": f"Fixes #{fixed}. Related to #{mentioned}."}).json()
        n = pr["number"]
        base, head = tip(c), tip(c, "m-ok")
        r = c.put(f"{REPO}/pulls/{n}/merge", json={"sha": head, "commit_title": "Custom title"})
        assert r.status_code == 200, r.text
        sha = r.json()["sha"]
        assert r.json() == {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}
        assert tip(c) == sha  # the base moved
        merge = c.get(f"{REPO}/git/commits/{sha}").json()
        assert [p["sha"] for p in merge["parents"]] == [base, head]
        assert merge["message"] == "Custom title\n\nMerge me"
        assert merge["author"]["email"] == "bob@users.devhub"
        doc = c.get(f"{REPO}/pulls/{n}").json()
        assert doc["state"] == "closed" and doc["merged"] is True and doc["merged_at"]
        assert doc["merged_by"]["login"] == "bob" and doc["merge_commit_sha"] == sha
        assert doc["head"]["sha"] == head and doc["commits"] == 1
        assert c.get(f"{REPO}/pulls/{n}/merge").status_code == 204
        assert c.get(f"{REPO}/issues/{n}").json()["pull_request"]["merged_at"] == doc["merged_at"]
        assert [e["event"] for e in c.get(f"{REPO}/issues/{n}/events").json()] == \
            ["merged", "closed"]
        for number in (fixed, by_commit):
            issue = c.get(f"{REPO}/issues/{number}").json()
            assert issue["state"] == "closed" and issue["state_reason"] == "completed"
            assert issue["closed_by"]["login"] == "bob"
            closed = [e for e in c.get(f"{REPO}/issues/{number}/events").json()
                      if e["event"] == "closed"]
            assert len(closed) == 1 and closed[0]["commit_id"] == sha
        assert c.get(f"{REPO}/issues/{mentioned}").json()["state"] == "open"
        # into a branch that is not the default one: nothing closes
        target = new_issue(c, "stays open")
        commit_on(c, "m-side-base", {"side.txt": "s\n"})
        commit_on(c, "m-side", {"side2.txt": "s\n"}, parent=tip(c, "m-side-base"))
        side = c.post(REPO + "/pulls", json={"title": "side", "head": "m-side",
                                             "base": "m-side-base", "body": f"Fixes #{target}"})
        assert c.put(f"{REPO}/pulls/{side.json()['number']}/merge").status_code == 200
        assert c.get(f"{REPO}/issues/{target}").json()["state"] == "open"
    hooks.wait(lambda: ("pull_request", "closed") in hooks.pr_events(n), "closed webhook")
    closed = next(p for p in hooks.payloads("pull_request", "closed") if p["number"] == n)
    assert closed["pull_request"]["merged"] is True
    assert closed["pull_request"]["merge_commit_sha"] == sha
    hooks.wait(lambda: {p["issue"]["number"] for p in hooks.payloads("issues", "closed")}
               >= {fixed, by_commit}, "issues closed webhooks")
    assert mentioned not in {p["issue"]["number"] for p in hooks.payloads("issues", "closed")}


def test_squash_and_rebase(inproc):
    with api(inproc, "erin") as c:
        commit_on(c, "m-squash", {"sq1.txt": "1\n"}, "squash one")
        commit_on(c, "m-squash", {"sq2.txt": "2\n"}, "squash two")
        pr = c.post(REPO + "/pulls", json={"title": "Squashed", "head": "m-squash",
                                           "base": "main"}).json()
    with api(inproc) as c:
        base = tip(c)
        r = c.put(f"{REPO}/pulls/{pr['number']}/merge", json={"merge_method": "squash"})
        assert r.status_code == 200, r.text
        squashed = c.get(f"{REPO}/git/commits/{r.json()['sha']}").json()
        assert [p["sha"] for p in squashed["parents"]] == [base]
        assert squashed["message"] == f"Squashed (#{pr['number']})\n\n* squash one\n\n* squash two"
        assert squashed["author"]["email"] == "erin@users.devhub"  # the pull request's author
        assert squashed["committer"]["email"] == "bob@users.devhub"
        paths = {e["path"] for e in c.get(f"{REPO}/git/trees/{squashed['tree']['sha']}").json()["tree"]}
        assert {"sq1.txt", "sq2.txt"} <= paths
        commit_on(c, "m-rebase", {"rb1.txt": "1\n"}, "rebase one", parent=base)
        commit_on(c, "m-rebase", {"rb2.txt": "2\n"}, "rebase two")
        pr = c.post(REPO + "/pulls", json={"title": "Rebased", "head": "m-rebase",
                                           "base": "main"}).json()
        before = tip(c)
        r = c.put(f"{REPO}/pulls/{pr['number']}/merge", json={"merge_method": "rebase"})
        assert r.status_code == 200, r.text
        top = c.get(f"{REPO}/git/commits/{r.json()['sha']}").json()
        below = c.get(f"{REPO}/git/commits/{top['parents'][0]['sha']}").json()
        assert top["message"] == "rebase two" and below["message"] == "rebase one"
        assert below["parents"][0]["sha"] == before  # replayed onto the base, linear


def test_close_reopen_and_edit_through_patch(hub, hooks):
    with api(hub) as c:
        pr = open_pull(c, "close-1")
        n = pr["number"]
        hub.advance_clock()
        closed = c.patch(f"{REPO}/pulls/{n}", json={"state": "closed"})
        assert closed.status_code == 200
        doc = closed.json()
        assert doc["state"] == "closed" and doc["merged"] is False and doc["closed_at"]
        assert doc["updated_at"] > pr["updated_at"]
        issue = c.get(f"{REPO}/issues/{n}").json()
        assert issue["state"] == "closed" and issue["pull_request"]["merged_at"] is None
        reopened = c.patch(f"{REPO}/pulls/{n}", json={"state": "open"}).json()
        assert reopened["state"] == "open" and reopened["closed_at"] is None
        commit_on(c, "close-base", {"cb.txt": "x\n"})
        edited = c.patch(f"{REPO}/pulls/{n}", json={"title": "new title", "body": "new body",
                                                    "base": "close-base"})
        assert edited.status_code == 200
        assert (edited.json()["title"], edited.json()["base"]["ref"]) == ("new title", "close-base")
        assert c.patch(f"{REPO}/pulls/{n}", json={"base": "no-such"}).status_code == 422
        assert c.patch(f"{REPO}/pulls/{n}", json={"state": "merged"}).status_code == 422
    with api(hub, "carol") as c:
        assert c.patch(f"{REPO}/pulls/{n}", json={"title": "carol's"}).status_code == 403
    hooks.wait(lambda: ("pull_request", "edited") in hooks.pr_events(n), "edited webhook")
    assert sorted(a for e, a in hooks.pr_events(n) if e == "pull_request") == [
        "closed", "edited", "opened", "reopened"]
    closed = next(p for p in hooks.payloads("pull_request", "closed") if p["number"] == n)
    assert closed["pull_request"]["merged"] is False and closed["pull_request"]["state"] == "closed"
    edited = next(p for p in hooks.payloads("pull_request", "edited") if p["number"] == n)
    assert edited["changes"]["title"] == {"from": "close-1"}
    assert edited["changes"]["base"]["ref"] == {"from": "main"}


def test_push_to_head_is_a_synchronize(hub, hooks, tmp_path):
    work = clone(hub, tmp_path)
    git("checkout", "-q", "-b", "sync-1", cwd=work)
    first = commit_file(work, "sync.txt", "one\n", "first")
    git("push", "-q", "origin", "sync-1", cwd=work)
    with api(hub) as c:
        pr = c.post(REPO + "/pulls", json={"title": "sync", "head": "sync-1", "base": "main"}).json()
        n = pr["number"]
        assert pr["head"]["sha"] == first
        hub.advance_clock()
        second = commit_file(work, "sync.txt", "one\ntwo\n", "second")
        git("push", "-q", "origin", "sync-1", cwd=work)
        hooks.wait(lambda: ("pull_request", "synchronize") in hooks.pr_events(n), "synchronize")
        sync = next(p for p in hooks.payloads("pull_request", "synchronize") if p["number"] == n)
        assert (sync["before"], sync["after"]) == (first, second)
        assert sync["pull_request"]["head"]["sha"] == second and sync["sender"]["login"] == "bob"
        doc = c.get(f"{REPO}/pulls/{n}").json()
        assert doc["head"]["sha"] == second and doc["updated_at"] > pr["updated_at"]
        assert doc["commits"] == 2
        # merging the branch by hand and pushing the base marks the pull request merged
        git("checkout", "-q", "main", cwd=work)
        git("pull", "-q", "--no-rebase", "origin", "main", cwd=work)
        git("merge", "-q", "--no-edit", "sync-1", cwd=work)
        git("push", "-q", "origin", "main", cwd=work)
        doc = c.get(f"{REPO}/pulls/{n}").json()
        assert doc["merged"] is True and doc["merge_commit_sha"] == tip(c)


# ------------------------------------------------------------------ branch protection


def protect(c, branch="main", reviews=None, **extra):
    body = {"required_status_checks": None, "enforce_admins": None,
            "required_pull_request_reviews": reviews, "restrictions": None, **extra}
    return c.put(f"{REPO}/branches/{branch}/protection", json=body)


def test_branch_protection(hub, tmp_path):
    with api(hub, "alice") as admin, api(hub) as bob, api(hub, "erin") as erin, \
            api(hub, "carol") as carol:
        r = admin.get(f"{REPO}/branches/main/protection")
        assert r.status_code == 404 and r.json()["message"] == "Branch not protected"
        assert protect(bob, reviews={"required_approving_review_count": 1}).status_code == 403
        assert protect(admin, branch="no-such").status_code == 404
        assert admin.put(f"{REPO}/branches/main/protection",
                         json={"enforce_admins": True}).status_code == 422
        assert protect(admin, restrictions={"users": ["bob"], "teams": []}).status_code == 422
        r = protect(admin, reviews={"required_approving_review_count": 1,
                                    "dismiss_stale_reviews": True})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["required_pull_request_reviews"]["required_approving_review_count"] == 1
        assert doc["required_pull_request_reviews"]["dismiss_stale_reviews"] is True
        assert doc["enforce_admins"]["enabled"] is False and "required_status_checks" not in doc
        assert doc["allow_force_pushes"] == {"enabled": False}
        assert admin.get(f"{REPO}/branches/main/protection").json() == doc
        assert bob.get(f"{REPO}/branches/main").json()["protected"] is True
        assert [b["name"] for b in bob.get(REPO + "/branches",
                                           params={"protected": "true"}).json()] == ["main"]

        main = tip(bob)
        work = clone(hub, tmp_path)
        commit_file(work, "direct.txt", "no\n", "straight to main")
        pushed = git("push", "origin", "main", cwd=work, check=False)
        assert pushed.returncode != 0
        assert "GH006: Protected branch update failed for refs/heads/main." in pushed.stderr
        assert "Changes must be made through a pull request." in pushed.stderr
        assert "[remote rejected] main -> main" in pushed.stderr
        assert tip(bob) == main  # unchanged
        git("push", "-q", "origin", "HEAD:refs/heads/unprotected", cwd=work)  # other branches
        assert tip(bob, "unprotected") == git("rev-parse", "HEAD", cwd=work).stdout.strip()
        r = bob.patch(f"{REPO}/git/refs/heads/main", json={"sha": tip(bob, "unprotected")})
        assert r.status_code == 422
        assert r.json()["message"].startswith("Protected branch update failed")
        assert r.json()["errors"] == ["Changes must be made through a pull request."]
        assert bob.delete(f"{REPO}/git/refs/heads/main").status_code == 422

        pr = bob.post(REPO + "/pulls", json={"title": "via pr", "head": "unprotected",
                                             "base": "main"}).json()
        n = pr["number"]
        assert pr["mergeable_state"] == "blocked"
        r = bob.put(f"{REPO}/pulls/{n}/merge")
        assert r.status_code == 405 and r.json()["message"] == \
            "At least 1 approving review is required by reviewers with write access."
        carol.post(f"{REPO}/pulls/{n}/reviews", json={"event": "APPROVE"})  # read: no count
        assert bob.put(f"{REPO}/pulls/{n}/merge").status_code == 405
        erin.post(f"{REPO}/pulls/{n}/reviews", json={"event": "APPROVE"})
        commit_file(work, "direct.txt", "again\n", "a new push")  # dismisses the approval
        git("push", "-q", "origin", "HEAD:refs/heads/unprotected", cwd=work)
        states = [x["state"] for x in bob.get(f"{REPO}/pulls/{n}/reviews").json()]
        assert states == ["DISMISSED", "DISMISSED"]  # stale approvals, carol's and erin's
        assert bob.put(f"{REPO}/pulls/{n}/merge").status_code == 405
        erin.post(f"{REPO}/pulls/{n}/reviews", json={"event": "APPROVE"})
        assert bob.get(f"{REPO}/pulls/{n}").json()["mergeable_state"] == "clean"
        merged = bob.put(f"{REPO}/pulls/{n}/merge")  # the merge API may update main
        assert merged.status_code == 200 and tip(bob) == merged.json()["sha"]

        git("fetch", "-q", "origin", cwd=work)  # an admin bypasses (enforce_admins is off)
        git("reset", "-q", "--hard", "origin/main", cwd=work)
        commit_file(work, "admin.txt", "a\n", "admin change")
        git("push", "-q", "origin", "main", cwd=work, token="t-alice")
        assert tip(bob) == git("rev-parse", "HEAD", cwd=work).stdout.strip()

        # a bare protection: fast-forwards pass, force pushes and deletion do not
        assert protect(admin, branch="unprotected").status_code == 200
        forward = commit_file(work, "ff.txt", "f\n", "fast forward")
        git("push", "-q", "origin", "HEAD:unprotected", "--force", cwd=work)
        assert tip(bob, "unprotected") == forward
        git("reset", "-q", "--hard", "HEAD~1", cwd=work)
        commit_file(work, "rewrite.txt", "r\n", "rewritten history")
        forced = git("push", "--force", "origin", "HEAD:unprotected", cwd=work, check=False)
        assert forced.returncode != 0 and "Cannot force-push to this branch" in forced.stderr
        deleted = git("push", "origin", ":unprotected", cwd=work, check=False)
        assert deleted.returncode != 0 and "Cannot delete this protected branch" in deleted.stderr
        assert tip(bob, "unprotected") == forward

        assert admin.delete(f"{REPO}/branches/unprotected/protection").status_code == 204
        assert admin.delete(f"{REPO}/branches/main/protection").status_code == 204
        assert admin.get(f"{REPO}/branches/main/protection").status_code == 404
        assert bob.get(f"{REPO}/branches/main").json()["protected"] is False


# ------------------------------------------------------------------ persistence


def test_pull_state_survives_restart(tmp_path):
    state = tmp_path / "devhub.json"
    with DevHubThread(seed=SEED, state_file=str(state)) as d:
        with api(d) as c, api(d, "erin") as e, api(d, "alice") as a:
            pr = open_pull(c, "keep-1", {"k.txt": "k\n"})
            n = pr["number"]
            c.post(f"{REPO}/pulls/{n}/requested_reviewers", json={"reviewers": ["carol"]})
            e.post(f"{REPO}/pulls/{n}/comments", json={
                "body": "nit", "commit_id": tip(c, "keep-1"), "path": "k.txt", "line": 1})
            e.post(f"{REPO}/pulls/{n}/reviews", json={"event": "APPROVE", "body": "lgtm"})
            assert protect(a, reviews={"required_approving_review_count": 1}).status_code == 200
            merged = c.put(f"{REPO}/pulls/{n}/merge").json()["sha"]
            draft = open_pull(c, "keep-2", draft=True)["number"]
    with DevHubThread(state_file=str(state)) as d:
        with api(d) as c, api(d, "alice") as a:
            doc = c.get(f"{REPO}/pulls/{n}").json()
            assert doc["merged"] is True and doc["merge_commit_sha"] == merged
            assert doc["merged_by"]["login"] == "bob" and tip(c) == merged
            assert [u["login"] for u in doc["requested_reviewers"]] == ["carol"]
            assert [(r["user"]["login"], r["state"]) for r in
                    c.get(f"{REPO}/pulls/{n}/reviews").json()] == [("erin", "COMMENTED"),
                                                                  ("erin", "APPROVED")]
            assert [x["body"] for x in c.get(f"{REPO}/pulls/{n}/comments").json()] == ["nit"]
            rule = a.get(f"{REPO}/branches/main/protection").json()
            assert rule["required_pull_request_reviews"]["required_approving_review_count"] == 1
            assert c.get(f"{REPO}/pulls/{draft}").json()["draft"] is True
            assert c.patch(f"{REPO}/git/refs/heads/main",
                           json={"sha": tip(c, "keep-2")}).status_code == 422  # still protected
            work = clone(d, tmp_path)
            commit_file(work, "late.txt", "x\n", "after the restart")
            pushed = git("push", "origin", "main", cwd=work, check=False)
            assert pushed.returncode != 0 and "GH006" in pushed.stderr


# ------------------------------------------------------------------ hostile bodies


def _fuzz_app():
    hub = Hub()
    hub.seed(SEED, 1_700_000_000)
    app = DevHubApp(hub)

    async def call(method, path, doc=None, token="t-bob"):
        body = b"" if doc is None else json.dumps(doc).encode()
        return await app.handle(method, path, "", {"authorization": f"token {token}",
                                                   "host": "devhub.test"}, body)

    async def setup():
        _, ref, _ = await call("GET", REPO + "/git/ref/heads/main")
        main = ref["object"]["sha"]
        _, commit, _ = await call("GET", f"{REPO}/git/commits/{main}")
        _, tree, _ = await call("POST", REPO + "/git/trees", {
            "base_tree": commit["tree"]["sha"],
            "tree": [{"path": "f.txt", "mode": "100644", "type": "blob", "content": "a\nb\n"}]})
        _, new, _ = await call("POST", REPO + "/git/commits", {
            "message": "m", "tree": tree["sha"], "parents": [main]})
        await call("POST", REPO + "/git/refs", {"ref": "refs/heads/fuzz", "sha": new["sha"]})
        status, pr, _ = await call("POST", REPO + "/pulls", {"title": "t", "head": "fuzz",
                                                             "base": "main"})
        assert status == 201, pr
        _, comment, _ = await call("POST", f"{REPO}/pulls/1/comments", {
            "body": "c", "commit_id": new["sha"], "path": "f.txt", "line": 1}, "t-erin")
        _, review, _ = await call("POST", f"{REPO}/pulls/1/reviews", {"body": "p"}, "t-erin")
        return comment["id"], review["id"]

    return app, call, trio.run(setup)


FUZZ_APP, FUZZ_CALL, (FUZZ_COMMENT, FUZZ_REVIEW) = _fuzz_app()
FUZZ_ENDPOINTS = [
    ("POST", REPO + "/pulls"),
    ("PATCH", REPO + "/pulls/1"),
    ("PUT", REPO + "/pulls/1/merge"),
    ("POST", REPO + "/pulls/1/requested_reviewers"),
    ("DELETE", REPO + "/pulls/1/requested_reviewers"),
    ("POST", REPO + "/pulls/1/reviews"),
    ("POST", REPO + "/pulls/1/reviews/{review}/events"),
    ("PUT", REPO + "/pulls/1/reviews/{review}"),
    ("PUT", REPO + "/pulls/1/reviews/{review}/dismissals"),
    ("POST", REPO + "/pulls/1/comments"),
    ("POST", REPO + "/pulls/1/comments/{comment}/replies"),
    ("PATCH", REPO + "/pulls/comments/{comment}"),
    ("PUT", REPO + "/branches/main/protection"),
]
fuzz_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**40) | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(
        st.sampled_from(["title", "body", "state", "base", "head", "draft", "sha", "merge_method",
                         "commit_title", "reviewers", "team_reviewers", "event", "comments",
                         "commit_id", "path", "line", "side", "position", "start_line",
                         "in_reply_to", "message", "subject_type", "required_status_checks",
                         "enforce_admins", "required_pull_request_reviews", "restrictions",
                         "strict", "contexts", "required_approving_review_count"]), c,
        max_size=6),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FUZZ_ENDPOINTS), fuzz_values)
def test_any_body_at_a_pull_endpoint_gets_a_clear_4xx(endpoint, doc):
    method, path = endpoint
    path = path.format(comment=FUZZ_COMMENT, review=FUZZ_REVIEW)
    token = "t-alice" if "protection" in path else "t-erin"
    status, payload, _ = trio.run(FUZZ_CALL, method, path, doc, token)
    assert status < 500, (method, path, doc, payload)
    if status >= 400:
        assert isinstance(payload, dict) and payload.get("message")
