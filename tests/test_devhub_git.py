"""devhub's git data API on real bare repositories: the claim-lock primitives."""

import httpx
import pytest
import trio
from github import GithubException, InputGitTreeElement

from bzzz.devhub import DevHubThread

from .test_devhub import SEED, gh, raw


@pytest.fixture(scope="module")
def hub():
    with DevHubThread(seed=SEED) as d:
        yield d


def claim_commit(repo, parent_sha: str, message: str) -> str:
    base = repo.get_git_commit(parent_sha)
    return repo.create_git_commit(message, base.tree, [base]).sha


def test_new_repo_has_one_commit_on_main(hub):
    repo = gh(hub).get_repo("alice/widgets")
    main = repo.get_git_ref("heads/main")
    commit = repo.get_git_commit(main.object.sha)
    assert commit.message == "Initial commit" and commit.parents == []
    assert [e.path for e in repo.get_git_tree(commit.tree.sha).tree] == ["README.md"]


def test_blob_tree_commit_roundtrip(hub):
    repo = gh(hub).get_repo("alice/widgets")
    blob = repo.create_git_blob("hello claim\n", "utf-8")
    assert repo.get_git_blob(blob.sha).content.replace("\n", "") == "aGVsbG8gY2xhaW0K"
    main = repo.get_git_commit(repo.get_git_ref("heads/main").object.sha)
    tree = repo.create_git_tree([InputGitTreeElement("claims/7.txt", "100644", "blob",
                                                     sha=blob.sha)], base_tree=main.tree)
    paths = sorted(e.path for e in repo.get_git_tree(tree.sha, recursive=True).tree)
    assert paths == ["README.md", "claims", "claims/7.txt"]
    commit = repo.create_git_commit("node n1 claims #7", tree, [main])
    assert commit.parents[0].sha == main.sha and commit.message == "node n1 claims #7"


def test_ref_create_is_compare_and_set(hub):
    repo = gh(hub).get_repo("alice/widgets")
    head = repo.get_git_ref("heads/main").object.sha
    c1 = claim_commit(repo, head, "claim 101 by n1")
    ref = repo.create_git_ref("refs/bzzz/claims/101", c1)
    assert ref.ref == "refs/bzzz/claims/101" and ref.object.sha == c1
    with pytest.raises(GithubException) as err:
        repo.create_git_ref("refs/bzzz/claims/101", claim_commit(repo, head, "claim 101 by n2"))
    assert err.value.status == 422 and err.value.data["message"] == "Reference already exists"
    assert repo.get_git_ref("bzzz/claims/101").object.sha == c1


def test_fast_forward_rule_and_delete(hub):
    repo = gh(hub).get_repo("alice/widgets")
    head = repo.get_git_ref("heads/main").object.sha
    c1 = claim_commit(repo, head, "claim 102")
    ref = repo.create_git_ref("refs/bzzz/claims/102", c1)
    renewal = claim_commit(repo, c1, "renew 102")  # child of the current claim commit
    ref.edit(renewal)
    assert repo.get_git_ref("bzzz/claims/102").object.sha == renewal
    rival = claim_commit(repo, c1, "stale takeover of 102")  # not a descendant of renewal
    with pytest.raises(GithubException) as err:
        ref.edit(rival)
    assert err.value.status == 422 and "fast forward" in err.value.data["message"]
    ref.edit(rival, force=True)
    assert repo.get_git_ref("bzzz/claims/102").object.sha == rival
    ref.delete()
    with pytest.raises(GithubException) as err:
        repo.get_git_ref("bzzz/claims/102")
    assert err.value.status == 404
    with raw(hub) as c:
        r = c.delete("/repos/alice/widgets/git/refs/bzzz/claims/102")
        assert r.status_code == 422


@pytest.mark.parametrize("name", ["bzzz/claims/1", "refs/claims", "refs/a..b/c", "refs/x/y.lock",
                                  "refs/x/ y", "refs/x/y/"])
def test_ref_name_rules(hub, name):
    repo = gh(hub).get_repo("alice/widgets")
    head = repo.get_git_ref("heads/main").object.sha
    with raw(hub) as c:
        r = c.post("/repos/alice/widgets/git/refs", json={"ref": name, "sha": head})
    assert r.status_code == 422


def test_non_pusher_cannot_write_git_data(hub):
    head = gh(hub).get_repo("alice/widgets").get_git_ref("heads/main").object.sha
    with raw(hub, "t-carol") as c:
        r = c.post("/repos/alice/widgets/git/refs", json={"ref": "refs/bzzz/claims/5", "sha": head})
    assert r.status_code == 403


async def test_fifty_concurrent_creators_exactly_one_wins(hub):
    repo = gh(hub).get_repo("alice/widgets")
    head = repo.get_git_ref("heads/main").object.sha
    commits = [claim_commit(repo, head, f"claim 200 by n{i}") for i in range(50)]
    statuses: list[int] = []

    async def create(client, sha):
        r = await client.post("/repos/alice/widgets/git/refs",
                              json={"ref": "refs/bzzz/claims/200", "sha": sha})
        statuses.append(r.status_code)

    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=hub.url, limits=limits,
                                 headers={"Authorization": "token t-bob"}) as client:
        async with trio.open_nursery() as n:
            for sha in commits:
                n.start_soon(create, client, sha)
    assert sorted(statuses) == [201] + [422] * 49
    winner = repo.get_git_ref("bzzz/claims/200").object.sha
    assert winner in commits


def _git(*args, cwd=None):
    import os
    import subprocess
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git", "-c", "user.name=bob", "-c", "user.email=bob@example.invalid",
                           *args], cwd=cwd, capture_output=True, text=True, env=env)


def test_clone_commit_push_then_pull_request(hub, tmp_path):
    port = hub.url.rsplit(":", 1)[1]
    remote = f"http://x-access-token:t-bob@127.0.0.1:{port}/alice/widgets.git"
    assert _git("clone", "-q", remote, str(tmp_path / "w")).returncode == 0
    work = tmp_path / "w"
    assert (work / "README.md").exists()
    _git("checkout", "-q", "-b", "bzzz/task-7", cwd=work)
    (work / "result.txt").write_text("done\n")
    _git("add", "result.txt", cwd=work)
    assert _git("commit", "-qm", "task 7 result", cwd=work).returncode == 0
    pushed = _git("push", "-q", "origin", "bzzz/task-7", cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    repo = gh(hub, "t-bob").get_repo("alice/widgets")
    head_sha = _git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert repo.get_git_ref("heads/bzzz/task-7").object.sha == head_sha  # push shows in refs API
    pr = repo.create_pull(title="Task 7", body="result", head="bzzz/task-7", base="main")
    assert pr.head.sha == head_sha and pr.base.ref == "main" and pr.state == "open"
    assert repo.get_pull(pr.number).title == "Task 7"
    assert pr.number in [p.number for p in repo.get_pulls()]
    assert repo.get_issue(pr.number).pull_request is not None  # shares the issue numbering
    with pytest.raises(GithubException) as err:
        repo.create_pull(title="nope", body="", head="no-such-branch", base="main")
    assert err.value.status == 422


def test_git_http_auth(hub, tmp_path):
    port = hub.url.rsplit(":", 1)[1]
    anon = _git("clone", "-q", f"http://127.0.0.1:{port}/alice/secret.git", str(tmp_path / "a"))
    assert anon.returncode != 0  # private: 401 challenge, no prompt possible
    bad = _git("clone", "-q", f"http://x:wrong@127.0.0.1:{port}/alice/secret.git",
               str(tmp_path / "b"))
    assert bad.returncode != 0
    reader = f"http://x-access-token:t-carol@127.0.0.1:{port}/alice/widgets.git"
    assert _git("clone", "-q", reader, str(tmp_path / "c")).returncode == 0  # read access
    work = tmp_path / "c"
    _git("checkout", "-q", "-b", "carol-branch", cwd=work)
    (work / "c.txt").write_text("c\n")
    _git("add", "c.txt", cwd=work)
    _git("commit", "-qm", "c", cwd=work)
    assert _git("push", "-q", "origin", "carol-branch", cwd=work).returncode != 0  # no push
