"""The task's own commits (bzzz/repo/taskcommits.py): real git makes them in the task's
checkout as a task would; the agent keeps them, replayed as its own, where that is safe, and
falls back to the single snapshot commit otherwise, never running git on the task's .git."""

import logging
import os
import subprocess
import zlib
from pathlib import Path

import pytest

from bzzz.repo import taskcommits
from bzzz.repo.git import Git
from bzzz.repo.taskcommits import clean_message, snapshot_keeping
from bzzz.repo.workspace import checkout

AGENT = ("Bzzz n1", "n1@bzzz.invalid")
TASK = {"GIT_AUTHOR_NAME": "Task Agent", "GIT_AUTHOR_EMAIL": "agent@example.com",
        "GIT_COMMITTER_NAME": "Task Agent", "GIT_COMMITTER_EMAIL": "agent@example.com"}
FINAL = "Do the task\n\nDone.\n\nBzzz-Issue: o/r#1\n"
TRAILERS = ["Bzzz-Issue: o/r#1", "Bzzz-Node: n1"]


def git(*args: str, cwd: Path | None = None, check: bool = True, stdin: str | None = None) -> str:
    """git as the task (or the test) runs it: no configuration of the machine's."""
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null", **TASK}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args}: {proc.stderr}")
    return proc.stdout.strip()


class Repo:
    """A mirror with two commits, and a task's checkout of its head."""

    def __init__(self, tmp: Path) -> None:
        seed = tmp / "seed"
        seed.mkdir()
        git("init", "-q", "-b", "main", cwd=seed)
        (seed / "README.md").write_text("# tasks\n")
        (seed / ".aider.conf.yml").write_text("model: theirs\n")  # the repository's own
        git("add", ".", cwd=seed)
        git("commit", "-qm", "one", cwd=seed)
        (seed / "src").mkdir()
        (seed / "src" / "app.py").write_text("print('hi')\n")
        git("add", ".", cwd=seed)
        git("commit", "-qm", "two", cwd=seed)
        self.mirror = tmp / "mirror.git"
        git("clone", "-q", "--bare", str(seed), str(self.mirror))
        self.start = git("--git-dir", str(self.mirror), "rev-parse", "HEAD")
        self.ws, self.private = tmp / "ws", tmp / "private"

    async def checkout(self):
        self.co = await checkout(Git(), self.mirror, "o/r", self.start, self.ws, self.private,
                                 "bzzz/1-task", None)
        return self.co

    def task(self, *args: str, check: bool = True) -> str:
        return git(*args, cwd=self.ws, check=check)

    def commit(self, message: str, **files: str) -> str:
        for name, text in files.items():
            path = self.ws / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.task("add", "-A")
        self.task("commit", "-qm", message)
        return self.task("rev-parse", "HEAD")

    def log(self, head: str) -> list[str]:
        """Mirror commits from the start to ``head``, oldest first."""
        return git("--git-dir", str(self.mirror), "rev-list", "--reverse",
                   f"{self.start}..{head}").split()

    def mirror_git(self, *args: str) -> str:
        return git("--git-dir", str(self.mirror), *args)

    def paths(self, commit: str) -> set[str]:
        return set(self.mirror_git("ls-tree", "-r", "--name-only", commit).split("\n"))

    async def deliver(self, exclude=(".aider*",)):
        return await snapshot_keeping(Git(), self.co, FINAL, AGENT, trailers=TRAILERS,
                                      exclude=exclude)


@pytest.fixture
async def repo(tmp_path):
    r = Repo(tmp_path)
    await r.checkout()
    return r


async def test_two_commits_are_kept_and_the_uncommitted_edits_follow(repo, caplog):
    repo.co.environment = ["build"]  # what the repository's setup made
    first = repo.commit("Say who keeps the tasks\n\nIn the README.",
                        **{"README.md": "# tasks, kept by agents\n"})
    second = repo.commit("Add a helper", **{"src__helper.py": "X = 1\n",
                                            ".aider.chat.history.md": "the chat\n",
                                            ".aider.conf.yml": "model: mine\n",
                                            "build__out.o": "binary\n"})
    repo.commit("Only history", **{".aider.input.history": "typed\n"})  # left out: dropped
    (repo.ws / "src" / "app.py").write_text("print('hello')\n")  # not committed
    caplog.set_level(logging.INFO, "bzzz.repo")

    made = await repo.deliver()

    assert made is not None and made.kept == 2 and made.declined == ""
    kept1, kept2, final = repo.log(made.head)
    assert repo.mirror_git("rev-parse", f"{kept1}^") == repo.start
    assert repo.mirror_git("rev-parse", f"{kept2}^") == kept1
    assert repo.mirror_git("rev-parse", f"{final}^") == kept2
    # the first tree is the task's own; the second lacks the CLI's leftovers and the setup's
    # files, and what the repository had under a leftover's name is as it was
    assert repo.mirror_git("rev-parse", f"{kept1}^{{tree}}") == \
        repo.task("rev-parse", f"{first}^{{tree}}")
    assert repo.task("rev-parse", f"{second}:.aider.chat.history.md")  # the task did commit it
    assert repo.task("rev-parse", f"{second}:build/out.o")
    assert repo.paths(kept2) == {"README.md", ".aider.conf.yml", "src/app.py", "src/helper.py"}
    assert repo.mirror_git("show", f"{kept2}:.aider.conf.yml") == "model: theirs"
    assert repo.mirror_git("show", f"{final}:src/app.py") == "print('hello')"
    assert repo.mirror_git("show", f"{kept2}:src/app.py") == "print('hi')"
    # the agent's commits, the task's messages, its author only as a co-author
    assert repo.mirror_git("log", "-1", "--format=%an <%ae>|%cn <%ce>", kept1) == \
        "Bzzz n1 <n1@bzzz.invalid>|Bzzz n1 <n1@bzzz.invalid>"
    assert repo.mirror_git("log", "-1", "--format=%B", kept1) == (
        "Say who keeps the tasks\n\nIn the README.\n\n"
        "Co-authored-by: Task Agent <agent@example.com>\nBzzz-Issue: o/r#1\nBzzz-Node: n1")
    assert repo.mirror_git("log", "-1", "--format=%s", kept2) == "Add a helper"
    assert repo.mirror_git("log", "-1", "--format=%B", final) == FINAL.strip()
    # the mirror alone holds every object pushed; the quarantine is gone
    repo.mirror_git("rev-list", "--objects", "--quiet", made.head, "--not", repo.start)
    assert repo.mirror_git("cat-file", "-t", f"{kept2}:src/helper.py") == "blob"
    assert not (repo.private / "quarantine").exists()
    assert "not kept" not in caplog.text


async def test_committed_work_needs_no_final_commit_and_no_commits_no_change(repo):
    repo.commit("Say who keeps the tasks", **{"README.md": "# tasks, kept\n"})
    made = await repo.deliver()
    assert made is not None and made.kept == 1
    assert repo.log(made.head) == [made.head]  # the working files are the kept commit's

    # back at the start, committed: no changes at all
    repo.task("revert", "--no-edit", "HEAD")
    assert await repo.deliver() is None


def _rewrite_history(repo, monkeypatch):
    repo.task("reset", "-q", "--hard", "HEAD~1")
    repo.commit("On an older commit", **{"README.md": "# older\n"})


def _merge(repo, monkeypatch):
    repo.task("checkout", "-q", "-b", "side")
    repo.commit("Side", **{"side.txt": "s\n"})
    repo.task("checkout", "-q", "bzzz/1-task")
    repo.commit("Main", **{"README.md": "# main\n"})
    repo.task("merge", "-q", "--no-edit", "side")


def _symlinked_ref(repo, monkeypatch):
    sha = repo.commit("Edit", **{"README.md": "# edited\n"})
    ref = repo.ws / ".git" / "refs" / "heads" / "bzzz" / "1-task"
    (repo.ws / ".git" / "elsewhere").write_text(sha + "\n")
    ref.unlink()
    ref.symlink_to(repo.ws / ".git" / "elsewhere")


def _corrupt_object(repo, monkeypatch):
    repo.commit("Edit", **{"README.md": "# edited\n"})
    blob = repo.task("rev-parse", "HEAD:README.md")
    path = repo.ws / ".git" / "objects" / blob[:2] / blob[2:]
    path.chmod(0o644)
    path.write_bytes(zlib.compress(b"blob 6\0# evil"))


def _packed(repo, monkeypatch):
    repo.commit("Edit", **{"README.md": "# edited\n"})
    repo.task("repack", "-q", "-d")


def _over_the_bound(repo, monkeypatch):
    for n in range(3):  # the bound is 2 here
        repo.commit(f"Edit {n}", **{"README.md": f"# edit {n}\n"})


def _dot_git_path(repo, monkeypatch):
    """A tree git itself would not write, made with git's plumbing."""
    blob = git("hash-object", "-w", "--stdin", cwd=repo.ws, stdin="[core]\n")
    inner = git("mktree", cwd=repo.ws, stdin=f"100644 blob {blob}\tconfig\n")
    top = git("mktree", cwd=repo.ws, stdin=f"040000 tree {inner}\t.git\n")
    repo.task("update-ref", "HEAD", git("commit-tree", top, "-p", "HEAD", "-m", "sneaky",
                                        cwd=repo.ws))
    (repo.ws / "README.md").write_text("# edited\n")


def _big_file(repo, monkeypatch):
    monkeypatch.setattr(taskcommits, "MAX_FILE", 1000)  # GitHub's 100 MB, scaled down
    repo.commit("Add a big file", **{"big.bin": "x" * 2000})
    repo.task("rm", "-q", "big.bin")
    repo.commit("Remove it", **{"README.md": "# edited\n"})


@pytest.mark.parametrize(("make", "why"), [
    (_rewrite_history, "HEAD does not descend from the start commit"),
    (_merge, "is a merge"),
    (_symlinked_ref, "a link"),
    (_corrupt_object, "does not hold what its name says"),
    (_packed, "the task packed its objects"),
    (_over_the_bound, "over 2 commits"),
    (_dot_git_path, "a path named '.git'"),
    (_big_file, "is too big"),
], ids=["rewritten", "merge", "symlinked-ref", "corrupt-object", "packed", "over-bound",
        "dot-git", "big-file"])
async def test_what_is_not_safe_to_keep_becomes_the_single_snapshot_commit(
        repo, make, why, caplog, monkeypatch):
    monkeypatch.setattr(taskcommits, "MAX_COMMITS", 2)
    make(repo, monkeypatch)
    caplog.set_level(logging.INFO, "bzzz.repo")

    made = await repo.deliver()

    assert made is not None and made.kept == 0
    assert repo.log(made.head) == [made.head]  # one commit on the start, as before
    assert repo.mirror_git("log", "-1", "--format=%B", made.head) == FINAL.strip()
    working = {str(p.relative_to(repo.ws)) for p in repo.ws.rglob("*")
               if p.is_file() and ".git" not in p.relative_to(repo.ws).parts}
    assert repo.paths(made.head) == working
    (record,) = [r for r in caplog.records if "not kept" in r.getMessage()]
    assert why in record.reason, record.reason
    assert made.declined == record.reason
    assert not (repo.private / "quarantine").exists()


async def test_the_tasks_git_configuration_and_hooks_never_run(repo, tmp_path):
    """The trap is armed (git run by anyone on the task's .git sets it off: checked at the
    end), and delivering the task's commit never sets it off."""
    repo.commit("Edit", **{"README.md": "# edited\n"})
    marker = tmp_path / "marker"
    hooks = repo.ws / ".git" / "trap-hooks"
    hooks.mkdir()
    for name in ("pre-commit", "post-commit", "post-checkout", "post-index-change",
                 "reference-transaction", "pre-auto-gc", "post-rewrite"):
        (hooks / name).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (hooks / name).chmod(0o755)
    repo.task("config", "core.hooksPath", str(hooks))
    repo.task("config", "core.fsmonitor", f"touch {marker}; false")
    repo.task("config", "filter.trap.clean", f"touch {marker}; cat")
    repo.task("config", "filter.trap.smudge", f"touch {marker}; cat")
    (repo.ws / ".gitattributes").write_text("* filter=trap\n")
    (repo.ws / "src" / "app.py").write_text("print('hello')\n")

    made = await repo.deliver()

    assert made is not None and made.kept == 1
    assert not marker.exists()
    repo.task("status", "--short")  # the task's own git: the trap works
    assert marker.exists()


def test_a_message_is_cleaned_and_bounded():
    assert clean_message("Fix\x1b[31m it\r\n\r\nbody \u202e\n\n".encode()) == "Fix[31m it\n\nbody"
    assert clean_message(b"") == "(no message)"
    long = clean_message(b"x" * 20_000)
    assert len(long) < 8100 and long.endswith("… (cut)")
