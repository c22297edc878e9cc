"""A small CI of devhub's own, acting as a GitHub App: the demo's CI, and the tests'.

It installs itself on an owner's repositories through devhub's App administration
(``/_devhub/apps``), takes an installation token (``checks: write``) as any App does, and
then, for each open pull request whose head it has not judged yet, reads the pull request's
files and posts a check run on the head: in progress first, then completed with a
conclusion, an output (title, summary, text) and annotations, as GitHub Actions does. What
passes is the ``judge``'s call: :func:`forbid` fails a head whose added lines hold a word
(``FIXME`` by default), with an annotation at each such line.

    with CiApp(hub.url, "owner/tasks", "owner", forbid("FIXME")) as ci:
        ...                      # judged every `interval` seconds in a thread of its own
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..github.credentials import make_jwt


@dataclass
class Judgement:
    conclusion: str  # success | failure | neutral ...
    title: str
    summary: str
    text: str = ""
    annotations: list[dict[str, Any]] = field(default_factory=list)


Judge = Callable[[list[dict[str, Any]]], Judgement]  # the pull request's files -> judgement
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def added_lines(patch: str) -> list[tuple[int, str]]:
    """(line number in the new file, text) of each line a unified diff adds."""
    out, line = [], 0
    for raw in patch.splitlines():
        m = _HUNK.match(raw)
        if m:
            line = int(m.group(1))
        elif raw.startswith("+") and not raw.startswith("+++"):
            out.append((line, raw[1:]))
            line += 1
        elif not raw.startswith("-"):
            line += 1
    return out


def forbid(word: str = "FIXME") -> Judge:
    """Fail a head whose added lines hold ``word``; an annotation at each."""
    def judge(files: list[dict[str, Any]]) -> Judgement:
        found = [{"path": f["filename"], "start_line": n, "end_line": n,
                  "annotation_level": "failure", "title": f"{word} left in",
                  "message": f"line {n} still says {word}: {text.strip()[:200]}"}
                 for f in files for n, text in added_lines(f.get("patch") or "")
                 if word in text]
        if found:
            return Judgement("failure", f"{len(found)} {word} left",
                             f"The change still holds {word} on {len(found)} line"
                             f"{'s' if len(found) != 1 else ''}.", annotations=found[:50])
        return Judgement("success", "All good", f"No {word} in the change.")
    return judge


class CiApp:
    def __init__(self, url: str, repo: str, owner: str, judge: Judge, *,
                 name: str = "demo-ci", interval: float = 0.5) -> None:
        self.url, self.repo, self.owner = url.rstrip("/"), repo, owner
        self.judge, self.name, self.interval = judge, name, interval
        self.judged: dict[str, str] = {}  # head sha -> conclusion
        self.completed_at: dict[str, float] = {}  # head sha -> time.time() of its verdict
        self.token = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def install(self) -> None:
        """A new App on devhub, installed on ``owner``'s repositories; its token."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        with httpx.Client(base_url=self.url, timeout=30) as c:
            app = c.post("/_devhub/apps", json={
                "slug": self.name, "owner": self.owner, "public_key": pem.decode(),
                "permissions": {"checks": "write", "pull_requests": "read",
                                "metadata": "read"}}).raise_for_status().json()
            inst = c.post(f"/_devhub/apps/{app['id']}/installations",
                          json={"account": self.owner}).raise_for_status().json()["id"]
            jwt = make_jwt(app["id"], key, time.time())
            self.token = c.post(f"/app/installations/{inst}/access_tokens",
                                headers={"Authorization": f"Bearer {jwt}"}
                                ).raise_for_status().json()["token"]

    def once(self) -> int:
        """Judge every open pull request's new head; how many were judged."""
        judged = 0
        with httpx.Client(base_url=self.url, timeout=30,
                          headers={"Authorization": f"token {self.token}"}) as c:
            for pr in c.get(f"/repos/{self.repo}/pulls",
                            params={"state": "open"}).raise_for_status().json():
                sha = pr["head"]["sha"]
                if sha in self.judged:
                    continue
                run = c.post(f"/repos/{self.repo}/check-runs", json={
                    "name": self.name, "head_sha": sha, "status": "in_progress"}
                ).raise_for_status().json()
                files = c.get(f"/repos/{self.repo}/pulls/{pr['number']}/files"
                              ).raise_for_status().json()
                j = self.judge(files)
                c.patch(f"/repos/{self.repo}/check-runs/{run['id']}", json={
                    "status": "completed", "conclusion": j.conclusion,
                    "output": {"title": j.title, "summary": j.summary, "text": j.text,
                               "annotations": j.annotations}}).raise_for_status()
                self.judged[sha] = j.conclusion
                self.completed_at[sha] = time.time()
                judged += 1
        return judged

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.once()
            except httpx.HTTPError:
                self.errors += 1  # devhub busy or gone: the next turn tries again

    def __enter__(self) -> "CiApp":
        if not self.token:
            self.install()
        self._thread = threading.Thread(target=self._loop, name="devhub-ci", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
