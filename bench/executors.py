"""Executor benchmarks (issue: executors that think). One JSON object per line.

  claim_to_first_token   a warm endpoint: seconds from an agent's claim of an llm task to
                         the model's first token (from the agent's log), p50; llama.cpp
                         serving the tiny test model when it is installed, else the fake
                         Ollama server (params.engine says which)
  answer_to_resume       webhooks on: seconds from a writer's answer to a waiting task's
                         claim by another agent, p50

Real `bzzz run` agents against devhub (a thread). (The client's per-chunk and first-token
overheads are in bench/llm.py.) `python bench/executors.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.devhub import DevHubThread  # noqa: E402
from bzzz.hyperlog.store import read_entries  # noqa: E402
from bzzz.testing import agents  # noqa: E402
from bzzz.testing.netns import wait_for  # noqa: E402

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}
ASK = ("```bzzz\nif grep -q 'answer-given' \"$BZZZ_FEEDBACK\"; then echo ok; "
       "else echo 'Which way?' > \"$BZZZ_OUTPUT/question.md\"; fi\n```")


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "executors", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def labels(owner: httpx.Client, n: int) -> set[str]:
    return {x["name"] for x in owner.get(f"/repos/owner/tasks/issues/{n}").json()["labels"]}


def engine(stack: ExitStack, tmp: Path) -> tuple[str, dict, str]:
    """(model, llm endpoint config, engine name): llama.cpp if installed, else the fake."""
    try:
        from bzzz.testing.llamacpp import LlamaServer, available
        from bzzz.testing.tinymodel import write_tiny_model
        ok, _ = available()
    except ImportError:
        ok = False
    if ok:
        server = stack.enter_context(LlamaServer(write_tiny_model(tmp / "tiny.gguf")))
        return server.alias, {"url": server.url, "kind": "openai", "models": [server.alias],
                              "context": 2048}, "llama.cpp"
    from bzzz.testing.fakeollama import FakeModel, FakeOllamaThread
    fake = stack.enter_context(FakeOllamaThread({"tiny": FakeModel(reply=["the ", "mesh "])}))
    return "tiny", {"url": fake.url}, "fake Ollama"


def claim_to_first_token(tmp: Path, samples: int) -> None:
    with ExitStack() as stack:
        model, ep, name = engine(stack, tmp)
        hub = stack.enter_context(DevHubThread(seed=SEED))
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=60)
        a = agents.start(tmp / "ft", "a", hub.url, "t-bot", "owner/tasks",
                         BZZZ_LLM=json.dumps([ep]), BZZZ_DETECT_CAPABILITIES="off",
                         BZZZ_CAPABILITIES="shell", BZZZ_GITHUB__POLL_INTERVAL="0.2",
                         BZZZ_GITHUB__WRITE_INTERVAL="0")
        try:
            numbers = []
            for i in range(samples + 1):  # the first warms the endpoint and the mirror
                n = owner.post("/repos/owner/tasks/issues", json={
                    "title": f"say {i}", "labels": ["bzzz"],
                    "body": f"```bzzz llm model={model} max_tokens=8\nSay it.\n```"}).json()["number"]
                wait_for(lambda n=n: labels(owner, n) & {"bzzz:done", "bzzz:failed"}, 60,
                         what=f"task {n}")
                numbers.append(n)
        finally:
            a.stop()
        entries = read_entries(a.data_dir / "log")
        claimed = {e["issue"]: e["ts"] for e in entries if e.get("type") == "claimed"}
        first = {e["issue"]: e["first_token_at"] for e in entries
                 if e.get("type") == "llm_answer" and e.get("first_token_at")}
        d = [first[n] - claimed[n] for n in numbers[1:] if n in first and n in claimed]
        p50 = statistics.median(d)
        emit("claim_to_first_token", round(p50, 3), "s", "p50 <= 0.5 s", p50 <= 0.5,
             engine=name, samples=len(d), max=round(max(d), 3))


def answer_to_resume(tmp: Path, samples: int) -> None:
    secret = "bench-hook-secret"
    (tmp / "hook.secret").write_text(secret + "\n")
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=60)
        ports = [agents.free_port() for _ in range(2)]
        procs = []
        for name, port in zip(("a", "b"), ports, strict=True):
            procs.append(agents.start(
                tmp / "ar", name, hub.url, "t-bot", "owner/tasks", BZZZ_SANDBOX="none",
                BZZZ_GITHUB__WEBHOOK_LISTEN=f"127.0.0.1:{port}",
                BZZZ_GITHUB__WEBHOOK_SECRET_FILE=str(tmp / "hook.secret"),
                BZZZ_GITHUB__POLL_INTERVAL="30", BZZZ_GITHUB__WRITE_INTERVAL="0"))
            owner.post("/repos/owner/tasks/hooks", json={
                "config": {"url": f"http://127.0.0.1:{port}/", "secret": secret},
                "events": ["issues", "issue_comment"]})
        a, b = procs
        delays = []
        try:
            for i in range(samples):
                n = owner.post("/repos/owner/tasks/issues", json={
                    "title": f"ask {i}", "labels": ["bzzz"], "body": ASK}).json()["number"]
                wait_for(lambda n=n: "bzzz:needs-input" in labels(owner, n), 60,
                         what=f"question {n}")
                asker = next(p for p in procs if any(
                    e.get("type") == "asked" and e.get("issue") == n
                    for e in read_entries(p.data_dir / "log")))
                other = b if asker is a else a
                # the asker labels first, then releases the claim: let it finish that
                wait_for(lambda n=n: owner.get(f"/repos/owner/tasks/git/ref/bzzz/claims/{n}")
                         .status_code == 404, 30, what=f"claim {n} released")
                # the asker is busy elsewhere: it cannot take the answer itself
                os.kill(asker.proc.pid, __import__("signal").SIGSTOP)
                try:
                    t0 = time.time()
                    owner.post(f"/repos/owner/tasks/issues/{n}/comments",
                               json={"body": "answer-given: left"})
                    try:
                        got = wait_for(lambda n=n, other=other: next((e["ts"] for e in read_entries(
                            other.data_dir / "log") if e.get("type") == "claimed"
                            and e.get("issue") == n), None), 60, what=f"resume {n}")
                    except TimeoutError:
                        for p in procs:
                            sys.stderr.write(f"--- {p.name}\n" + "\n".join(
                                json.dumps(e)[:300] for e in read_entries(p.data_dir / "log")
                                if e.get("issue") == n or e.get("type") == "command") + "\n")
                        raise
                    delays.append(got - t0)
                    wait_for(lambda n=n: "bzzz:done" in labels(owner, n), 60, what=f"done {n}")
                finally:
                    os.kill(asker.proc.pid, __import__("signal").SIGCONT)
        finally:
            for p in procs:
                p.stop()
    p50 = statistics.median(delays)
    emit("answer_to_resume", round(p50, 3), "s", "p50 <= 2 s", p50 <= 2, samples=len(delays),
         max=round(max(delays), 3), webhooks=True, poll_interval_s=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-exec-") as tmp:
        os.chmod(tmp, 0o755)
        claim_to_first_token(Path(tmp), 3 if args.quick else 10)
        answer_to_resume(Path(tmp), 2 if args.quick else 7)
    return 0


if __name__ == "__main__":
    sys.exit(main())
