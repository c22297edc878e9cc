"""devhub and the trust rule: who wrote what (author_association), who may write (the
permission API), what outsiders may edit, edit/delete webhooks, the repo-wide comment feed
agents poll, reactions, and role changes at run time, all answered as GitHub does.

PyGithub and webhooks need a served devhub (``hub``); tests that only talk REST use
``inproc``, devhub in process with no socket (bzzz/testing/inprocess.py)."""

import json
import time

import httpx
import pytest
from github import Auth, Github, GithubException

from bzzz.devhub import DevHubThread
from bzzz.devhub.state import Hub, HubError
from bzzz.github.webhooks import verify
from bzzz.testing.inprocess import InProcessDevHub
from bzzz.testing.wait import wait_for

from .test_devhub_webhooks import receiver  # noqa: F401 (a fixture)

ROLE_USERS = ["alice", "wendy", "max", "tracy", "rita", "adam", "sam", "cora", "pat", "olga",
              "carl"]
SEED = {
    "users": [{"login": u, "token": f"t-{u}"} for u in ROLE_USERS],
    "repos": [{"full_name": "alice/trust", "push": ["wendy"], "read": ["rita"],
               "triage": ["tracy"], "maintain": ["max"], "admin": ["adam"]},
              {"full_name": "alice/vault", "private": True, "push": ["wendy"]},
              {"full_name": "olga/elsewhere", "contributors": ["cora"]}],
}
REPO = "/repos/alice/trust"


@pytest.fixture(scope="module")
def hub():
    with DevHubThread(seed=SEED) as d:
        yield d


@pytest.fixture(scope="module")
def inproc():
    with InProcessDevHub(seed=SEED) as d:
        yield d


def raw(hub, who: str) -> httpx.Client:
    """A client of either devhub (served or in process)."""
    return hub.client(headers={"Authorization": f"token t-{who}"})


def gh(hub, who: str) -> Github:
    return Github(base_url=hub.url, auth=Auth.Token(f"t-{who}"), retry=None,
                  seconds_between_requests=0, seconds_between_writes=0)


def issue_by(hub, who: str, title: str = "task", **doc) -> dict:
    with raw(hub, who) as c:
        r = c.post(REPO + "/issues", json={"title": title, **doc})
    assert r.status_code == 201, r.text
    return r.json()


def comment_by(hub, who: str, number: int, body: str) -> dict:
    with raw(hub, who) as c:
        r = c.post(f"{REPO}/issues/{number}/comments", json={"body": body})
    assert r.status_code == 201, r.text
    return r.json()


# ------------------------------------------------------------------ author_association


def test_author_association_on_issues_and_comments(hub):
    expected = {"alice": "OWNER", "wendy": "COLLABORATOR", "rita": "COLLABORATOR",
                "tracy": "COLLABORATOR", "adam": "COLLABORATOR", "sam": "NONE"}
    for who, association in expected.items():
        issue = issue_by(hub, who)
        assert issue["author_association"] == association, who
        assert comment_by(hub, who, issue["number"], "hi")["author_association"] == association
    # a read-only collaborator is COLLABORATOR too: association never proves write access
    issue = gh(hub, "rita").get_repo("alice/trust").create_issue(title="from rita")
    assert issue.raw_data["author_association"] == "COLLABORATOR"
    assert issue.create_comment("me again").author_association == "COLLABORATOR"


def test_contributor_and_first_time_contributor(inproc):
    with raw(inproc, "wendy") as c:  # a commit authored by carl lands on the default branch
        main = c.get(REPO + "/git/ref/heads/main").json()["object"]["sha"]
        tree = c.get(f"{REPO}/git/commits/{main}").json()["tree"]["sha"]
        commit = c.post(REPO + "/git/commits", json={
            "message": "carl's fix", "tree": tree, "parents": [main],
            "author": {"name": "Carl", "email": "carl@users.devhub"}}).json()["sha"]
        assert c.patch(REPO + "/git/refs/heads/main", json={"sha": commit}).status_code == 200
        assert c.post(REPO + "/git/refs", json={"ref": "refs/heads/feature",
                                                "sha": commit}).status_code == 201
    assert issue_by(inproc, "carl")["author_association"] == "CONTRIBUTOR"
    # a pull request from someone with no commits here: first-time contributor, or first
    # timer when they have no commits on devhub at all
    for who, association in (("cora", "FIRST_TIME_CONTRIBUTOR"), ("pat", "FIRST_TIMER")):
        assert issue_by(inproc, who)["author_association"] == "NONE"
        with raw(inproc, who) as c:
            pr = c.post(REPO + "/pulls", json={"title": "pr", "head": "feature", "base": "main"})
        assert pr.status_code == 201 and pr.json()["author_association"] == association
        assert issue_by(inproc, who)["author_association"] == association


# ------------------------------------------------------------------ the permission API


def test_permission_answers_for_every_role(hub):
    expected = {"alice": ("admin", "admin"), "adam": ("admin", "admin"),
                "max": ("write", "maintain"), "wendy": ("write", "write"),
                "tracy": ("read", "triage"), "rita": ("read", "read"),
                "sam": ("read", "read")}  # not a collaborator, but the repo is public
    with raw(hub, "wendy") as c:
        for who, (permission, role) in expected.items():
            r = c.get(f"{REPO}/collaborators/{who}/permission")
            assert r.status_code == 200, who
            doc = r.json()
            assert (doc["permission"], doc["role_name"]) == (permission, role), who
            assert doc["user"]["login"] == who and doc["user"]["role_name"] == role
            assert doc["user"]["permissions"]["push"] == (permission in ("admin", "write"))
        assert c.get(f"{REPO}/collaborators/nobody-at-all/permission").status_code == 404
        # a private repository: a non-collaborator has no access at all
        doc = c.get("/repos/alice/vault/collaborators/rita/permission").json()
        assert (doc["permission"], doc["role_name"]) == ("none", "none")
    repo = gh(hub, "alice").get_repo("alice/trust")
    assert repo.get_collaborator_permission("max") == "write"
    assert repo.get_collaborator_role_name("max") == "maintain"
    assert repo.get_collaborator_permission("sam") == "read"


def test_permission_api_needs_push_access(inproc):
    for who in ("rita", "tracy", "sam"):
        with raw(inproc, who) as c:
            r = c.get(f"{REPO}/collaborators/wendy/permission")
            assert r.status_code == 403
            assert r.json()["message"] == "Must have push access to view collaborator permission."
            assert c.get(f"{REPO}/collaborators/wendy").status_code == 403
    with raw(inproc, "sam") as c:  # a private repository stays hidden
        assert c.get("/repos/alice/vault/collaborators/wendy/permission").status_code == 404
    with inproc.client() as c:
        assert c.get(f"{REPO}/collaborators/wendy/permission").status_code == 401


def test_collaborator_check_and_list(hub):
    with raw(hub, "wendy") as c:
        for who in ("alice", "wendy", "rita", "tracy", "max", "adam"):
            assert c.get(f"{REPO}/collaborators/{who}").status_code == 204, who
        for who in ("sam", "nobody-at-all"):
            assert c.get(f"{REPO}/collaborators/{who}").status_code == 404, who
        listed = {u["login"]: u["role_name"] for u in c.get(REPO + "/collaborators").json()}
        assert listed == {"alice": "admin", "adam": "admin", "max": "maintain",
                          "wendy": "write", "tracy": "triage", "rita": "read"}
        pushers = {u["login"] for u in c.get(REPO + "/collaborators",
                                             params={"permission": "push"}).json()}
        assert pushers == {"alice", "adam", "max", "wendy"}
    assert gh(hub, "wendy").get_repo("alice/trust").has_in_collaborators("rita") is True


def test_repo_permissions_hash_follows_the_role(inproc):
    with raw(inproc, "tracy") as c:
        perms = c.get(REPO).json()["permissions"]
    assert perms == {"admin": False, "maintain": False, "push": False, "triage": True,
                     "pull": True}
    with raw(inproc, "max") as c:
        perms = c.get(REPO).json()["permissions"]
    assert perms == {"admin": False, "maintain": True, "push": True, "triage": True,
                     "pull": True}


# ------------------------------------------------------------------ what outsiders may edit


def test_outsider_edits_own_issue_text_but_not_labels(inproc):
    with raw(inproc, "sam") as c:
        r = c.post(REPO + "/issues", json={"title": "please run", "body": "v1",
                                           "labels": ["bzzz"], "assignees": ["wendy"]})
        issue = r.json()
        assert issue["labels"] == [] and issue["assignees"] == []  # silently dropped
        n = issue["number"]
        inproc.advance_clock()  # timestamps have whole seconds: the edit is a second later
        r = c.patch(f"{REPO}/issues/{n}", json={"body": "v2", "title": "please run now",
                                                 "labels": ["bzzz"], "assignees": ["wendy"]})
        assert r.status_code == 200
        edited = r.json()
        assert (edited["body"], edited["title"]) == ("v2", "please run now")
        assert edited["labels"] == [] and edited["assignees"] == []  # silently ignored
        assert edited["updated_at"] > issue["updated_at"]
        # only labels: still 200, still ignored
        r = c.patch(f"{REPO}/issues/{n}", json={"labels": ["approved"]})
        assert r.status_code == 200 and r.json()["labels"] == []
        assert c.patch(f"{REPO}/issues/{n}", json={"state": "closed"}).json()["state"] == "closed"
        # someone else's issue: no edit at all
        other = issue_by(inproc, "alice")["number"]
        for change in ({"body": "mine now"}, {"title": "x"}, {"state": "closed"},
                       {"labels": ["bzzz"]}):
            assert c.patch(f"{REPO}/issues/{other}", json=change).status_code == 403, change
    with raw(inproc, "rita") as c:  # a read collaborator is an outsider here too
        assert c.patch(f"{REPO}/issues/{other}", json={"body": "x"}).status_code == 403
    with raw(inproc, "wendy") as c:  # writers edit anything
        r = c.patch(f"{REPO}/issues/{n}", json={"body": "v3", "labels": ["bzzz"],
                                                 "state": "open"})
        assert r.status_code == 200 and [x["name"] for x in r.json()["labels"]] == ["bzzz"]
        assert r.json()["body"] == "v3" and r.json()["state"] == "open"


def test_triager_labels_but_does_not_rewrite_others_text(inproc):
    n = issue_by(inproc, "alice", body="orig")["number"]
    with raw(inproc, "tracy") as c:
        r = c.patch(f"{REPO}/issues/{n}", json={"labels": ["triaged"]})
        assert r.status_code == 200 and [x["name"] for x in r.json()["labels"]] == ["triaged"]
        assert c.post(f"{REPO}/issues/{n}/labels", json={"labels": ["more"]}).status_code == 200
        assert c.patch(f"{REPO}/issues/{n}", json={"body": "rewritten"}).status_code == 403
    with raw(inproc, "rita") as c:
        assert c.post(f"{REPO}/issues/{n}/labels", json={"labels": ["x"]}).status_code == 403


def test_comment_edit_and_delete_by_author_writer_and_others(hub):
    n = issue_by(hub, "alice")["number"]
    mine = comment_by(hub, "sam", n, "/bzzz approve abc")
    theirs = comment_by(hub, "alice", n, "owner's words")
    with raw(hub, "sam") as c:
        hub.advance_clock()
        r = c.patch(f"{REPO}/issues/comments/{mine['id']}", json={"body": "/bzzz approve def"})
        assert r.status_code == 200 and r.json()["body"] == "/bzzz approve def"
        assert r.json()["updated_at"] > mine["updated_at"]
        assert r.json()["created_at"] == mine["created_at"]
        assert c.patch(f"{REPO}/issues/comments/{theirs['id']}",
                       json={"body": "forged"}).status_code == 403
        assert c.delete(f"{REPO}/issues/comments/{theirs['id']}").status_code == 403
        assert c.patch(f"{REPO}/issues/comments/{mine['id']}", json={}).status_code == 422
    with raw(hub, "rita") as c:
        assert c.patch(f"{REPO}/issues/comments/{mine['id']}",
                       json={"body": "x"}).status_code == 403
    with raw(hub, "wendy") as c:
        r = c.patch(f"{REPO}/issues/comments/{mine['id']}", json={"body": "moderated"})
        assert r.status_code == 200 and r.json()["body"] == "moderated"
        assert r.json()["user"]["login"] == "sam"  # still sam's comment
    with raw(hub, "sam") as c:
        assert c.delete(f"{REPO}/issues/comments/{mine['id']}").status_code == 204
        assert c.get(f"{REPO}/issues/comments/{mine['id']}").status_code == 404
        assert c.delete(f"{REPO}/issues/comments/{mine['id']}").status_code == 404
    with raw(hub, "wendy") as c:
        assert c.delete(f"{REPO}/issues/comments/{theirs['id']}").status_code == 204
        assert c.get(f"{REPO}/issues/{n}").json()["comments"] == 0
        assert c.get(f"{REPO}/issues/{n}/comments").json() == []
    sam_issue = gh(hub, "sam").get_repo("alice/trust").get_issue(n)  # PyGithub: same rule
    sam_issue.create_comment("x").delete()  # their own
    comment = gh(hub, "alice").get_repo("alice/trust").get_issue(n).create_comment("a")
    with pytest.raises(GithubException) as err:
        sam_issue.get_comment(comment.id).delete()
    assert err.value.status == 403


# ------------------------------------------------------------------ webhooks


def test_edit_and_delete_webhooks_carry_changes_and_are_signed(hub, receiver):  # noqa: F811
    url, got = receiver
    secret = "trust-hook"
    with raw(hub, "alice") as c:
        hook = c.post(REPO + "/hooks", json={"config": {"url": url, "secret": secret},
                                            "events": ["issues", "issue_comment"]}).json()
    try:
        issue = issue_by(hub, "sam", title="t1", body="b1")
        n = issue["number"]
        with raw(hub, "sam") as c:
            c.patch(f"{REPO}/issues/{n}", json={"body": "b2"})
            c.patch(f"{REPO}/issues/{n}", json={"title": "t2", "body": "b2"})
            c.patch(f"{REPO}/issues/{n}", json={"title": "t2"})  # no change: no delivery
            cid = c.post(f"{REPO}/issues/{n}/comments", json={"body": "c1"}).json()["id"]
            c.patch(f"{REPO}/issues/comments/{cid}", json={"body": "c2"})
            c.delete(f"{REPO}/issues/comments/{cid}")
        wanted = [("issues", "opened"), ("issues", "edited"), ("issues", "edited"),
                  ("issue_comment", "created"), ("issue_comment", "edited"),
                  ("issue_comment", "deleted")]
        wait_for(lambda: len(got) >= len(wanted), 10, what="webhook deliveries")
        time.sleep(0.2)
        assert len(got) == len(wanted)
        payloads = []
        for g in got:
            assert verify(secret, g["body"], g["headers"]["x-hub-signature-256"])
            p = json.loads(g["body"])
            payloads.append(p)
            assert p["issue"]["number"] == n and p["repository"]["full_name"] == "alice/trust"
            assert p["sender"]["login"] == "sam"
        kinds = sorted((g["headers"]["x-github-event"], p["action"]) for g, p in
                       zip(got, payloads, strict=True))
        assert kinds == sorted(wanted)
        edits = [p for p in payloads if p["action"] == "edited" and "comment" not in p]
        assert {json.dumps(p["changes"], sort_keys=True) for p in edits} == {
            json.dumps({"body": {"from": "b1"}}), json.dumps({"title": {"from": "t1"}})}
        by_action = {p["action"]: p for p in payloads if "comment" in p}
        assert by_action["created"]["comment"]["body"] == "c1"
        assert by_action["edited"]["changes"] == {"body": {"from": "c1"}}
        assert by_action["edited"]["comment"]["body"] == "c2"
        assert by_action["deleted"]["comment"]["id"] == cid
        for p in by_action.values():
            assert p["comment"]["author_association"] == "NONE"
            assert p["comment"]["user"]["login"] == "sam"
            assert "reactions" in p["comment"]
    finally:
        with raw(hub, "alice") as c:
            c.delete(f"{REPO}/hooks/{hook['id']}")


# ------------------------------------------------------------------ the repo-wide comment feed


def test_repo_comments_since_sort_pagination_and_free_304(tmp_path):
    with InProcessDevHub(seed=SEED) as d, raw(d, "wendy") as c:
        n = issue_by(d, "alice")["number"]
        first = comment_by(d, "alice", n, "one")
        d.advance_clock()
        second = comment_by(d, "sam", n, "two")
        d.advance_clock()
        third = comment_by(d, "rita", n, "/bzzz approve 1234")
        feed = REPO + "/issues/comments"
        assert [x["id"] for x in c.get(feed).json()] == [first["id"], second["id"], third["id"]]
        desc = c.get(feed, params={"sort": "created"}).json()  # direction defaults to desc
        assert [x["id"] for x in desc] == [third["id"], second["id"], first["id"]]
        assert [x["id"] for x in c.get(feed, params={"direction": "desc"}).json()] == \
            [first["id"], second["id"], third["id"]]  # direction is ignored without sort
        since = second["created_at"]
        params = {"since": since, "sort": "updated", "direction": "asc"}
        assert [x["id"] for x in c.get(feed, params=params).json()] == [second["id"], third["id"]]

        # an edit moves a comment to the end of the updated-ascending feed
        d.advance_clock()
        with raw(d, "alice") as a:
            assert a.patch(f"{REPO}/issues/comments/{first['id']}",
                           json={"body": "one, edited"}).status_code == 200
        polled = c.get(feed, params=params)
        assert [x["id"] for x in polled.json()] == [second["id"], third["id"], first["id"]]

        # conditional polling: 304 with no body and no cost, until something changes
        etag = polled.headers["etag"]
        before = int(polled.headers["x-ratelimit-remaining"])
        for _ in range(3):
            r = c.get(feed, params=params, headers={"If-None-Match": etag})
            assert r.status_code == 304 and r.content == b""
        assert int(c.get("/rate_limit").json()["rate"]["remaining"]) == before
        comment_by(d, "sam", n, "four")
        r = c.get(feed, params=params, headers={"If-None-Match": etag})
        assert r.status_code == 200 and r.headers["etag"] != etag and len(r.json()) == 4

        # pagination with Link
        page1 = c.get(feed, params={**params, "per_page": 2})
        assert len(page1.json()) == 2 and 'rel="next"' in page1.headers["link"]
        page2 = c.get(feed, params={**params, "per_page": 2, "page": 2})
        assert [x["id"] for x in page1.json() + page2.json()] == \
            [x["id"] for x in r.json()]
        # the per-issue list takes since too
        assert len(c.get(f"{REPO}/issues/{n}/comments", params={"since": since}).json()) == 4

        for bad in ({"since": "yesterday"}, {"sort": "comments"}, {"sort": "updated",
                                                                   "direction": "up"}):
            assert c.get(feed, params=bad).status_code == 422, bad
        since_dt = time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                 time.gmtime(time.time() + 3600))
        assert c.get(feed, params={"since": since_dt}).json() == []


# ------------------------------------------------------------------ reactions


def test_reactions_on_comments_and_issues(hub):
    n = issue_by(hub, "alice")["number"]
    comment = comment_by(hub, "rita", n, "/bzzz retry")
    path = f"{REPO}/issues/comments/{comment['id']}/reactions"
    with raw(hub, "wendy") as c:
        first = c.post(path, json={"content": "eyes"})
        assert first.status_code == 201
        r = first.json()
        assert r["content"] == "eyes" and r["user"]["login"] == "wendy" and r["created_at"]
        again = c.post(path, json={"content": "eyes"})
        assert again.status_code == 200 and again.json()["id"] == r["id"]
        for bad in ({"content": "thumbsup"}, {}, {"content": 1}):
            assert c.post(path, json=bad).status_code == 422, bad
        assert c.post(path, json={"content": "+1"}).status_code == 201
    with raw(hub, "sam") as c:  # anyone who can read the repository may react
        assert c.post(path, json={"content": "eyes"}).status_code == 201
        listed = c.get(path).json()
        assert [(x["user"]["login"], x["content"]) for x in listed] == \
            [("wendy", "eyes"), ("wendy", "+1"), ("sam", "eyes")]
        assert len(c.get(path, params={"content": "eyes"}).json()) == 2
        assert c.get(path, params={"content": "nope"}).status_code == 422
        doc = c.get(f"{REPO}/issues/comments/{comment['id']}").json()
        assert doc["reactions"] == {
            "url": f"{hub.url}{path}", "total_count": 3, "+1": 1, "-1": 0, "laugh": 0,
            "hooray": 0, "confused": 0, "heart": 0, "rocket": 0, "eyes": 2}
        assert doc["updated_at"] == comment["updated_at"]  # reacting is not editing
        mine = next(x for x in listed if x["user"]["login"] == "sam")
        wendys = next(x for x in listed if x["user"]["login"] == "wendy")
        assert c.delete(f"{path}/{wendys['id']}").status_code == 403
        assert c.delete(f"{path}/{mine['id']}").status_code == 204
        assert c.get(f"{REPO}/issues/comments/{comment['id']}").json()[
            "reactions"]["total_count"] == 2
        assert c.post(f"{REPO}/issues/comments/99999999/reactions",
                      json={"content": "eyes"}).status_code == 404

        ipath = f"{REPO}/issues/{n}/reactions"
        assert c.post(ipath, json={"content": "rocket"}).status_code == 201
        assert c.post(ipath, json={"content": "rocket"}).status_code == 200
        issue = c.get(f"{REPO}/issues/{n}").json()
        assert issue["reactions"]["rocket"] == 1 and issue["reactions"]["total_count"] == 1
        assert issue["reactions"]["url"] == f"{hub.url}{ipath}"
        assert [x["content"] for x in c.get(ipath).json()] == ["rocket"]
    # PyGithub reads and writes the same endpoints
    pc = gh(hub, "alice").get_repo("alice/trust").get_issue(n).get_comment(comment["id"])
    assert pc.create_reaction("hooray").content == "hooray"
    assert sorted(x.content for x in pc.get_reactions()) == ["+1", "eyes", "hooray"]
    assert pc.reactions["total_count"] == 2  # the document as it was fetched
    # deleting the comment takes its reactions along
    with raw(hub, "rita") as c:
        assert c.delete(f"{REPO}/issues/comments/{comment['id']}").status_code == 204
        assert c.get(path).status_code == 404


# ------------------------------------------------------------------ roles at run time


def test_role_change_at_run_time(tmp_path):
    state = tmp_path / "devhub.json"
    with InProcessDevHub(seed=SEED, state_file=str(state)) as d:
        n = issue_by(d, "alice")["number"]
        perm = f"{REPO}/collaborators/wendy/permission"
        with raw(d, "alice") as c:
            assert c.get(perm).json()["permission"] == "write"
            r = c.post("/_devhub/roles", json={"repo": "alice/trust", "login": "wendy",
                                               "role": "read"})
            assert r.status_code == 200 and r.json() == {"repo": "alice/trust",
                                                         "login": "wendy", "role": "read"}
            assert c.get(perm).json()["permission"] == "read"
        with raw(d, "wendy") as c:  # write access is gone at once
            assert c.post(f"{REPO}/issues/{n}/labels", json={"labels": ["x"]}).status_code == 403
            assert c.get(perm).status_code == 403
            assert comment_by(d, "wendy", n, "still here")["author_association"] == "COLLABORATOR"
        with raw(d, "alice") as c:
            c.post("/_devhub/roles", json={"repo": "alice/trust", "login": "wendy",
                                           "role": None})
            doc = c.get(perm).json()
            assert (doc["permission"], doc["role_name"]) == ("read", "read")  # public repo
            assert c.get(f"{REPO}/collaborators/wendy").status_code == 404
            assert comment_by(d, "wendy", n, "outsider")["author_association"] == "NONE"
            r = c.post("/_devhub/roles", json={"repo": "alice/trust", "login": "wendy",
                                               "role": "maintain"})
            assert r.json()["role"] == "maintain"
            for bad in ({"repo": "alice/trust", "login": "wendy", "role": "god"},
                        {"repo": "alice/trust", "login": "alice", "role": "read"},
                        {"repo": "alice/trust", "login": "wendy"},
                        {"repo": "alice/none", "login": "wendy", "role": "read"}, [1]):
                assert c.post("/_devhub/roles", json=bad).status_code in (404, 422), bad
            # GitHub's own removal: DELETE /collaborators/{username}, admin only
            with raw(d, "max") as m:
                assert m.delete(f"{REPO}/collaborators/rita").status_code == 403
            assert c.delete(f"{REPO}/collaborators/rita").status_code == 204
            assert c.get(f"{REPO}/collaborators/rita").status_code == 404
            c.post("/_devhub/roles", json={"repo": "alice/trust", "login": "sam",
                                           "role": "triage"})
    with InProcessDevHub(state_file=str(state)) as d, raw(d, "alice") as c:  # roles persist
        assert c.get(f"{REPO}/collaborators/wendy/permission").json()["role_name"] == "maintain"
        assert c.get(f"{REPO}/collaborators/sam/permission").json()["role_name"] == "triage"
        assert c.get(f"{REPO}/collaborators/tracy/permission").json()["role_name"] == "triage"
        assert c.get(f"{REPO}/collaborators/rita/permission").json()["role_name"] == "read"
        assert c.get(f"{REPO}/collaborators/rita").status_code == 404


def test_seed_roles_validation_and_the_first_state_format():
    hub = Hub()
    with pytest.raises(HubError):
        hub.seed({"repos": [{"full_name": "a/b", "admin": "bob"}]}, 0)
    with pytest.raises(HubError):
        hub.seed({"repos": [{"full_name": "a/b", "contributors": "bob"}]}, 0)
    hub.seed({"repos": [{"full_name": "a/b", "push": ["a", "bob"], "read": ["bob", "cy"]}]}, 0)
    repo = hub.repos["a/b"]
    assert repo.role("a") == "admin" and repo.role("bob") == "write" and repo.role("cy") == "read"
    doc = hub.to_json()
    old = json.loads(json.dumps(doc))  # the first format: push/read sets, no roles
    for r in old["repos"]:
        r.pop("roles"), r.pop("contributors"), r.pop("pull_authors"), r.pop("reactions")
        r["push"], r["read"] = ["bob"], ["cy"]
    again = Hub.from_json(old).repos["a/b"]
    assert again.roles == {"bob": "write", "cy": "read"}
    assert Hub.from_json(doc).repos["a/b"].roles == repo.roles
