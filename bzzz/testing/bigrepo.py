"""A repository of many files and commits, made in seconds with ``git fast-import`` and
pushed to a (dev)hub: the load for the repository-work tests and benches."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ..repo.git import auth_header, git_env


def fast_import_stream(files: int, commits: int, branch: str = "main") -> bytes:
    """The first commit adds ``files`` files in 50 directories; each later commit changes
    two of them."""
    out: list[bytes] = []
    when = 1_700_000_000
    mark = 0

    def blob(text: str) -> int:
        nonlocal mark
        mark += 1
        data = text.encode()
        out.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
        return mark

    def commit(msg: str, changes: list[tuple[str, int]], parent: int | None) -> int:
        nonlocal mark, when
        mark += 1
        when += 60
        m = msg.encode()
        head = (b"commit refs/heads/%s\nmark :%d\nauthor Dev <dev@example.invalid> %d +0000\n"
                b"committer Dev <dev@example.invalid> %d +0000\ndata %d\n%s\n"
                % (branch.encode(), mark, when, when, len(m), m))
        out.append(head + (b"from :%d\n" % parent if parent else b""))
        for path, b in changes:
            out.append(b"M 100644 :%d %s\n" % (b, path.encode()))
        out.append(b"\n")
        return mark

    def path(i: int) -> str:
        return f"src/d{i % 50:02d}/f{i:05d}.txt"

    # sizes like a source tree's: 200 bytes to 4 KB, about 2 KB on average
    first = [(path(i), blob(f"file {i}\n" + ("line of text %d\n" % i) * (12 + (i * 37) % 240)))
             for i in range(files)]
    first.append(("README.md", blob("# big\n")))
    parent = commit("Initial import", first, None)
    for c in range(1, commits):
        changes = [(path((c * 7 + k) % files), blob(f"file changed in commit {c} ({k})\n"))
                   for k in range(2)]
        parent = commit(f"Change {c}", changes, parent)
    out.append(b"done\n")
    return b"".join(out)


def push_big_repo(clone_url: str, token: str, files: int = 5000, commits: int = 2000,
                  branch: str = "main") -> None:
    """Replace ``branch`` of the repository at ``clone_url`` with a generated history."""
    with tempfile.TemporaryDirectory(prefix="bzzz-bigrepo-") as tmp:
        env = git_env()
        subprocess.run(["git", "init", "-q", "--bare", tmp], check=True, env=env)
        subprocess.run(["git", "--git-dir", tmp, "fast-import", "--quiet", "--done"],
                       input=fast_import_stream(files, commits, branch), check=True, env=env)
        subprocess.run(["git", "--git-dir", tmp, "push", "-q", "--force", clone_url,
                        f"refs/heads/{branch}:refs/heads/{branch}"], check=True,
                       env=git_env(token=token))


def working_bytes(root: Path) -> int:
    """Bytes of the files in a checkout, ``.git`` excluded."""
    total = 0
    for p in Path(root).rglob("*"):
        if ".git" in p.relative_to(root).parts[:1]:
            continue
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


__all__ = ["auth_header", "fast_import_stream", "push_big_repo", "working_bytes"]
