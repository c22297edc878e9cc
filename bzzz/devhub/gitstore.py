"""Real git behind devhub: one bare repository per repo, driven by the ``git`` command.

The git data API (blobs, trees, commits, refs) and smart HTTP (clone, push) work on the same
repositories, so a branch pushed with ``git push`` is visible in the refs API and a claim ref
made through the API can be fetched. Ref updates are compare-and-set at two levels: a
per-repository trio lock serialises devhub's own updates, and ``git update-ref`` is given the
expected old value, so exactly one of any number of concurrent creators wins.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from .errors import HubError
from .protection import hook_script

ZERO = "0" * 40
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
FILE_STATUS = {"A": "added", "M": "modified", "D": "removed", "R": "renamed", "C": "copied",
               "T": "changed"}
LOG_FORMAT = "%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B%x1e"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "HOME": "/nonexistent",
}


class GitStoreError(HubError):
    """A git object or ref operation refused: GitHub's status and message."""


@dataclass
class Identity:
    name: str
    email: str
    date: str  # git's "<unix seconds> +0000"


def valid_ref_name(ref: str) -> bool:
    """GitHub's rule (starts with refs/, at least two slashes) plus git's own."""
    if not ref.startswith("refs/") or ref.count("/") < 2:
        return False
    bad = ("..", "//", "@{", "\\", " ", "~", "^", ":", "?", "*", "[")
    if any(b in ref for b in bad) or ref.endswith(("/", ".lock", ".")):
        return False
    return all(0x20 < ord(ch) < 0x7F for ch in ref)


class GitStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, trio.Lock] = {}
        self._known: dict[tuple[str, str], str] = {}  # (repo, sha) -> type; objects never change

    def path(self, full_name: str) -> Path:
        owner, name = full_name.lower().split("/", 1)
        return self.root / owner / f"{name}.git"

    def _env(self, full_name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GIT_ENV)
        env["GIT_DIR"] = str(self.path(full_name))
        env.update(extra or {})
        return env

    # ------------------------------------------------------------------ setup (sync)

    def ensure(self, full_name: str, owner: str, now: int, branch: str = "main",
               protected: bool = False) -> None:
        """Create the bare repository with one commit on ``branch`` (GitHub's auto-init);
        ``protected``: it has protected branches, so it needs the update hook."""
        path = self.path(full_name)
        if (path / "HEAD").exists():
            self.install_hooks(full_name, protected)
            return
        path.mkdir(parents=True, exist_ok=True)
        env = self._env(full_name)

        def git(*args: str, data: bytes | None = None) -> str:
            return subprocess.run(["git", *args], env=env, input=data, capture_output=True,
                                  check=True).stdout.decode().strip()

        git("init", "--bare", "--quiet", f"--initial-branch={branch}", str(path))
        git("config", "http.receivepack", "true")
        readme = git("hash-object", "-w", "--stdin",
                     data=f"# {full_name.split('/')[1]}\n".encode())
        tree = git("mktree", data=f"100644 blob {readme}\tREADME.md\n".encode())
        ident = {"GIT_AUTHOR_NAME": owner, "GIT_AUTHOR_EMAIL": f"{owner}@users.devhub",
                 "GIT_AUTHOR_DATE": f"{now} +0000", "GIT_COMMITTER_NAME": owner,
                 "GIT_COMMITTER_EMAIL": f"{owner}@users.devhub",
                 "GIT_COMMITTER_DATE": f"{now} +0000"}
        commit = subprocess.run(["git", "commit-tree", tree, "-m", "Initial commit"],
                                env={**env, **ident}, capture_output=True, check=True
                                ).stdout.decode().strip()
        git("update-ref", f"refs/heads/{branch}", commit, ZERO)
        self.install_hooks(full_name, protected)

    def install_hooks(self, full_name: str, protected: bool) -> None:
        """The update hook that applies branch protection to pushes, in a repository with
        protected branches only (rewritten at every start: it names this interpreter)."""
        hook = self.path(full_name) / "hooks" / "update"
        if not protected:
            hook.unlink(missing_ok=True)
            return
        hook.parent.mkdir(exist_ok=True)
        text = hook_script()
        if not hook.exists() or hook.read_text() != text:
            tmp = hook.with_name("update.tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            os.replace(tmp, hook)

    # ------------------------------------------------------------------ plumbing (async)

    async def _git(self, full_name: str, *args: str, data: bytes | None = None,
                   env: dict[str, str] | None = None,
                   check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = await trio.run_process(["git", *args], stdin=data, capture_stdout=True,
                                        capture_stderr=True, check=False,
                                        env=self._env(full_name, env))
        if check and result.returncode != 0:
            raise GitStoreError(422, result.stderr.decode(errors="replace").strip() or "git failed")
        return result

    async def object_type(self, full_name: str, sha: str) -> str | None:
        if not isinstance(sha, str) or not SHA_RE.match(sha):
            return None
        key = (full_name.lower(), sha)
        if key in self._known:
            return self._known[key]
        r = await self._git(full_name, "cat-file", "-t", sha, check=False)
        if r.returncode != 0:
            return None
        kind = r.stdout.decode().strip()
        if len(self._known) > 100_000:
            self._known.clear()
        self._known[key] = kind
        return kind

    async def write_blob(self, full_name: str, content: bytes) -> str:
        r = await self._git(full_name, "hash-object", "-w", "--stdin", data=content)
        return r.stdout.decode().strip()

    async def read_blob(self, full_name: str, sha: str) -> bytes:
        if await self.object_type(full_name, sha) != "blob":
            raise GitStoreError(404, "Not Found")
        return (await self._git(full_name, "cat-file", "blob", sha)).stdout

    async def write_tree(self, full_name: str, entries: list[dict[str, Any]],
                         base_tree: str | None) -> str:
        """Entries: {path, mode, type, sha | content}; nested paths allowed (via an index)."""
        index = self.path(full_name) / f"tmp-index-{os.getpid()}-{id(entries)}"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            if base_tree:
                if await self.object_type(full_name, base_tree) != "tree":
                    raise GitStoreError(422, "base_tree is not a valid tree oid")
                await self._git(full_name, "read-tree", base_tree, env=env)
            else:
                await self._git(full_name, "read-tree", "--empty", env=env)
            for e in entries:
                path, mode = e.get("path"), e.get("mode", "100644")
                if not isinstance(path, str) or not path or path.startswith("/"):
                    raise GitStoreError(422, "tree.path is invalid")
                if mode not in ("100644", "100755", "040000", "160000", "120000"):
                    raise GitStoreError(422, f"tree.mode {mode!r} is invalid")
                if "content" in e and e["content"] is not None:
                    sha = await self.write_blob(full_name, str(e["content"]).encode())
                elif e.get("sha") is None and "sha" in e:
                    # mode 0 removes the entry (--force-remove wants a work tree)
                    await self._git(full_name, "update-index", "--index-info",
                                    data=f"0 {ZERO}\t{path}\n".encode(), env=env)
                    continue
                else:
                    given = e.get("sha")
                    if not isinstance(given, str) \
                            or await self.object_type(full_name, given) is None:
                        raise GitStoreError(422, f"tree.sha {given} is not a valid object")
                    sha = given
                await self._git(full_name, "update-index", "--add", "--cacheinfo",
                                f"{mode},{sha},{path}", env=env)
            return (await self._git(full_name, "write-tree", env=env)).stdout.decode().strip()
        finally:
            index.unlink(missing_ok=True)

    async def read_tree(self, full_name: str, sha: str, recursive: bool = False) -> list[dict[str, Any]]:
        if await self.object_type(full_name, sha) not in ("tree", "commit"):
            raise GitStoreError(404, "Not Found")
        args = ["ls-tree", "-l", "-z"] + (["-r", "-t"] if recursive else []) + [sha]
        out = (await self._git(full_name, *args)).stdout.decode()
        entries = []
        for line in filter(None, out.split("\0")):
            meta, path = line.split("\t", 1)
            mode, kind, obj, size = meta.split()
            entry: dict[str, Any] = {"path": path, "mode": mode, "type": kind, "sha": obj}
            if size != "-":
                entry["size"] = int(size)
            entries.append(entry)
        return entries

    async def write_commit(self, full_name: str, message: str, tree: str, parents: list[str],
                           author: Identity, committer: Identity) -> str:
        if await self.object_type(full_name, tree) != "tree":
            raise GitStoreError(422, "Tree SHA does not exist")
        args = ["commit-tree", tree]
        for p in parents:
            if await self.object_type(full_name, p) != "commit":
                raise GitStoreError(422, "Parent SHA does not exist or is not a commit object")
            args += ["-p", p]
        env = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
               "GIT_AUTHOR_DATE": author.date, "GIT_COMMITTER_NAME": committer.name,
               "GIT_COMMITTER_EMAIL": committer.email, "GIT_COMMITTER_DATE": committer.date}
        r = await self._git(full_name, *args, data=message.encode(), env=env)
        return r.stdout.decode().strip()

    async def read_commit(self, full_name: str, sha: str) -> dict[str, Any]:
        if await self.object_type(full_name, sha) != "commit":
            raise GitStoreError(404, "Not Found")
        raw = (await self._git(full_name, "cat-file", "commit", sha)).stdout.decode(
            errors="replace")
        head, _, message = raw.partition("\n\n")
        doc: dict[str, Any] = {"sha": sha, "parents": [], "message": message}
        for line in head.splitlines():
            key, _, value = line.partition(" ")
            if key == "tree":
                doc["tree"] = value
            elif key == "parent":
                doc["parents"].append(value)
            elif key in ("author", "committer"):
                name, _, rest = value.partition(" <")
                email, _, when = rest.partition("> ")
                doc[key] = {"name": name, "email": email, "unix": int(when.split()[0])}
        return doc

    # ------------------------------------------------------------------ refs

    def _lock(self, full_name: str) -> trio.Lock:
        return self._locks.setdefault(full_name.lower(), trio.Lock())

    async def refs(self, full_name: str, prefix: str = "refs/") -> list[tuple[str, str]]:
        out = (await self._git(full_name, "for-each-ref", "--format=%(refname) %(objectname)",
                               prefix)).stdout.decode()
        pairs = [line.split(" ", 1) for line in out.splitlines() if line]
        return [(name, sha) for name, sha in pairs]

    async def resolve(self, full_name: str, ref: str) -> str | None:
        r = await self._git(full_name, "rev-parse", "--verify", "--quiet", ref + "^{}",
                            check=False)
        if r.returncode != 0:
            return None
        exists = await self._git(full_name, "show-ref", "--verify", "--quiet", ref, check=False)
        return r.stdout.decode().strip() if exists.returncode == 0 else None

    async def create_ref(self, full_name: str, ref: str, sha: str) -> None:
        if not valid_ref_name(ref):
            raise GitStoreError(422, "Reference name is not valid" if ref.startswith("refs/")
                           else "Reference name must start with 'refs/' and have at least two slashes.")
        if await self.object_type(full_name, sha) is None:
            raise GitStoreError(422, "Object does not exist")
        async with self._lock(full_name):
            r = await self._git(full_name, "update-ref", ref, sha, ZERO, check=False)
        if r.returncode != 0:
            raise GitStoreError(422, "Reference already exists")

    async def update_ref(self, full_name: str, ref: str, sha: str, force: bool) -> None:
        if await self.object_type(full_name, sha) is None:
            raise GitStoreError(422, "Object does not exist")
        async with self._lock(full_name):
            old = await self.resolve(full_name, ref)
            if old is None:
                raise GitStoreError(422, "Reference does not exist")
            if not force and old != sha:
                fast_forward = await self._git(full_name, "merge-base", "--is-ancestor", old, sha,
                                               check=False)
                if fast_forward.returncode != 0:
                    raise GitStoreError(422, "Update is not a fast forward")
            r = await self._git(full_name, "update-ref", ref, sha, old, check=False)
        if r.returncode != 0:
            raise GitStoreError(422, "Update is not a fast forward")

    async def authors(self, full_name: str, ref: str) -> set[tuple[str, str]]:
        """(name, email) of every commit author reachable from ``ref`` (empty if it is gone)."""
        r = await self._git(full_name, "log", "--format=%an%x00%ae", ref, "--", check=False)
        if r.returncode != 0:
            return set()
        out = set()
        for line in r.stdout.decode(errors="replace").splitlines():
            name, _, email = line.partition("\0")
            out.add((name, email))
        return out

    async def delete_ref(self, full_name: str, ref: str) -> None:
        async with self._lock(full_name):
            old = await self.resolve(full_name, ref)
            if old is None:
                raise GitStoreError(422, "Reference does not exist")
            r = await self._git(full_name, "update-ref", "-d", ref, old, check=False)
        if r.returncode != 0:
            raise GitStoreError(422, "Reference does not exist")

    # ------------------------------------------------------------------ pull requests

    async def branch_tips(self, full_name: str) -> dict[str, str]:
        return {name[len("refs/heads/"):]: sha
                for name, sha in await self.refs(full_name, "refs/heads/")}

    async def merge_base(self, full_name: str, a: str, b: str) -> str | None:
        r = await self._git(full_name, "merge-base", a, b, check=False)
        return r.stdout.decode().strip() or None if r.returncode == 0 else None

    async def is_ancestor(self, full_name: str, a: str, b: str) -> bool:
        r = await self._git(full_name, "merge-base", "--is-ancestor", a, b, check=False)
        return r.returncode == 0

    async def log(self, full_name: str, head: str, exclude: str | None,
                  limit: int = 250) -> list[dict[str, Any]]:
        """Commits reachable from ``head`` and not from ``exclude``, oldest first (parents
        before children), in read_commit's shape."""
        args = ["log", "--topo-order", "--reverse", f"--format={LOG_FORMAT}", head]
        if exclude:
            args.append("^" + exclude)
        out = (await self._git(full_name, *args, "--")).stdout.decode(errors="replace")
        commits = []
        for record in out.split("\x1e"):
            record = record.lstrip("\n")
            if not record:
                continue
            sha, tree, parents, an, ae, at, cn, ce, ct, message = record.split("\0", 9)
            commits.append({"sha": sha, "tree": tree, "parents": parents.split(),
                            "author": {"name": an, "email": ae, "unix": int(at)},
                            "committer": {"name": cn, "email": ce, "unix": int(ct)},
                            "message": message})
        return commits[:limit]

    async def merge_trees(self, full_name: str, ours: str, theirs: str) -> str | None:
        """The tree of a three-way merge of two commits, or None on conflicts (or when they
        share no history)."""
        r = await self._git(full_name, "merge-tree", "--write-tree", "--name-only",
                            "--no-messages", ours, theirs, check=False)
        if r.returncode != 0:
            return None
        return r.stdout.decode().split("\n", 1)[0].strip()

    async def pick_tree(self, full_name: str, commit: dict[str, Any], onto: str) -> str | None:
        """The tree of ``commit``'s change applied on top of commit ``onto`` (three-way where
        the patch does not apply as is), or None when it conflicts."""
        if len(commit["parents"]) != 1:
            return None
        diff = (await self._git(full_name, "diff", "--binary", "--full-index",
                                commit["parents"][0], commit["sha"])).stdout
        index = self.path(full_name) / f"tmp-index-pick-{os.getpid()}-{id(commit)}"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            await self._git(full_name, "read-tree", onto, env=env)
            if diff:
                r = await self._git(full_name, "apply", "--cached", "--3way", data=diff, env=env,
                                    check=False)
                if r.returncode != 0:
                    return None
            return (await self._git(full_name, "write-tree", env=env)).stdout.decode().strip()
        finally:
            index.unlink(missing_ok=True)

    async def move_ref(self, full_name: str, ref: str, new: str, old: str) -> bool:
        """Compare-and-set: ``ref`` becomes ``new`` only if it still is ``old``."""
        async with self._lock(full_name):
            r = await self._git(full_name, "update-ref", ref, new, old, check=False)
        return r.returncode == 0

    async def diff(self, full_name: str, base: str, head: str) -> list[dict[str, Any]]:
        """GitHub's pull request files: ``head`` against its merge base with ``base`` (the
        three-dot diff), renames detected. Each file: filename, status, previous_filename,
        sha (the blob), additions, deletions and the unified ``patch`` (None when binary)."""
        start = await self.merge_base(full_name, base, head) or EMPTY_TREE
        common = ["diff", "-M", "--no-color", "--no-ext-diff", start, head]
        raw = (await self._git(full_name, *common[:1], "--raw", "-z", "--no-abbrev",
                               *common[1:])).stdout.decode(errors="replace").split("\0")
        files: list[dict[str, Any]] = []
        i = 0
        while i < len(raw):
            meta = raw[i]
            if not meta.startswith(":"):
                i += 1
                continue
            _, _, old_sha, new_sha, status = meta[1:].split()
            kind = status[0]
            if kind in "RC":
                previous, name, i = raw[i + 1], raw[i + 2], i + 3
            else:
                previous, name, i = None, raw[i + 1], i + 2
            files.append({"filename": name, "previous_filename": previous,
                          "status": FILE_STATUS.get(kind, "modified"),
                          "sha": old_sha if kind == "D" else new_sha,
                          "additions": 0, "deletions": 0, "patch": None})
        numstat = (await self._git(full_name, *common[:1], "--numstat", "-z",
                                   *common[1:])).stdout.decode(errors="replace").split("\0")
        counts = []
        i = 0
        while i < len(numstat):
            entry = numstat[i]
            if not entry:
                i += 1
                continue
            added, deleted, path = entry.split("\t", 2)
            i += 3 if path == "" else 1  # a rename: old and new names follow
            counts.append((0 if added == "-" else int(added), 0 if deleted == "-" else int(deleted)))
        for f, (n_added, n_deleted) in zip(files, counts, strict=True):  # one line a file
            f["additions"], f["deletions"] = n_added, n_deleted
        patch = (await self._git(full_name, *common)).stdout.decode(errors="replace")
        chunks = [c for c in re.split(r"^diff --git ", patch, flags=re.MULTILINE) if c]
        # not strict: a type change (a file becoming a symlink) is one file, two patches
        for f, chunk in zip(files, chunks, strict=False):
            lines = chunk.split("\n")
            start_at = next((n for n, line in enumerate(lines) if line.startswith("@@")), None)
            if start_at is not None:
                f["patch"] = "\n".join(lines[start_at:]).rstrip("\n")
        return files
