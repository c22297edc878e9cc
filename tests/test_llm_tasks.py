"""The llm executor end to end: real `bzzz run` agents, devhub, and a fake server that speaks
Ollama's documented API (bzzz/testing/fakeollama.py, not Ollama itself); llama.cpp, the real
engine, is in test_llamacpp_tasks.py."""

import json

import httpx

from bzzz.devhub import DevHubThread
from bzzz.hyperlog.store import read_entries
from bzzz.testing import agents
from bzzz.testing.fakeollama import FakeModel, FakeOllamaThread
from bzzz.testing.wait import wait_for

from .test_agent_tasks import labels, start_agent
from .test_repo_work import SEED, client, comments, file_on, pulls

DIFF_REPLY = ["I added the line.\n\n```diff\n--- a/README.md\n+++ b/README.md\n",
              "@@ -1 +1,2 @@\n # tasks\n+Hello from the model.\n```\n"]


def llm_env(url, **extra):
    return {"BZZZ_LLM": json.dumps([{"url": url, **extra}]), "BZZZ_DETECT_CAPABILITIES": "off",
            "BZZZ_CAPABILITIES": "shell"}


def test_an_llm_answer_is_the_result_and_a_diff_answer_becomes_a_pull_request(tmp_path, workdir):
    models = {"llama3": FakeModel(reply=["The ", "mesh ", "is ", "alive."]),
              "coder": FakeModel(reply=DIFF_REPLY)}
    with FakeOllamaThread(models) as fake, DevHubThread(seed=SEED) as hub:
        owner = client(hub)
        plain = owner.post("/repos/owner/tasks/issues", json={
            "title": "Say it", "labels": ["bzzz"],
            "body": "```bzzz llm model=llama3 max_tokens=50 temperature=0.1\nSay something.\n```"}
        ).json()["number"]
        change = owner.post("/repos/owner/tasks/issues", json={
            "title": "Greet in the README", "labels": ["bzzz"],
            "body": "```bzzz llm model=coder files=README.md\nAdd a greeting line.\n```"}
        ).json()["number"]
        a, api = start_agent(tmp_path, "a", hub, workdir, **llm_env(fake.url))
        try:
            wait_for(lambda: "bzzz:done" in labels(owner, plain), 60, what="the plain answer")
            wait_for(lambda: "bzzz:review" in labels(owner, change), 60, what="the diff's PR")
            caps = httpx.get(f"http://127.0.0.1:{api}/api/v1/status").json()["capabilities"]
        finally:
            a.terminate()
            a.wait(15)
        assert {"llm:llama3", "ollama:llama3", "llm:coder"} <= set(caps)
        (result,) = [c for c in comments(owner, plain) if "<!-- bzzz:result:" in c["body"]]
        assert "The mesh is alive." in result["body"]
        chat = [r for r in fake.app.requests if r["path"] == "/api/chat"]
        sent = [r["body"] for r in chat if r["body"].get("model", "").startswith("llama3")][0]
        assert sent["stream"] is True and sent["options"]["num_predict"] == 50
        assert "Say something." in json.dumps(sent["messages"])
        coder = [r["body"] for r in chat if r["body"].get("model", "").startswith("coder")][0]
        assert "# tasks" in json.dumps(coder["messages"])  # files= put README.md in the prompt
        (pr,) = pulls(owner)
        assert "Hello from the model." in file_on(owner, pr["head"]["ref"], "README.md")
        assert f"Fixes #{change}" in pr["body"]


def test_a_missing_model_is_a_need_a_peer_with_the_model_meets(tmp_path, workdir):
    """a announces coder (configured) but its server lacks it: the 404 makes a help request
    for llm:coder, and b, which has it, takes the task over."""
    from pathlib import Path
    with FakeOllamaThread({"other": FakeModel()}) as empty, \
            FakeOllamaThread({"coder": FakeModel(reply=["done ", "by ", "b"])}) as full, \
            DevHubThread(seed=SEED) as hub:
        owner = client(hub)
        root = Path(workdir)
        common = {"BZZZ_GITHUB__WRITE_INTERVAL": "0", "BZZZ_SANDBOX": "none",
                  "BZZZ_HELP_WAIT": "2"}
        # b polls once, at its start (nothing to see yet): it only gets tasks handed over
        b = agents.start(root, "b", hub.url, "t-bot", "owner/tasks",
                         BZZZ_GITHUB__POLL_INTERVAL="3600", **common, **llm_env(full.url))
        a = agents.start(root, "a", hub.url, "t-bot", "owner/tasks", bootstrap=b.addr,
                         BZZZ_GITHUB__POLL_INTERVAL="0.5",
                         **common, **llm_env(empty.url, models=["coder"]))
        try:
            def peers_known():
                st = httpx.get(f"{a.api}/api/v1/status").json()
                return any("llm:coder" in p["capabilities"] for p in st["peers"])
            wait_for(peers_known, 30, what="a hears b's models")
            n = owner.post("/repos/owner/tasks/issues", json={
                "title": "Needs coder", "labels": ["bzzz"],
                "body": "```bzzz llm model=coder\nDo it.\n```"}).json()["number"]
            wait_for(lambda: "bzzz:done" in labels(owner, n), 90, what="done by b")
        finally:
            a.stop()
            b.stop()
        (result,) = [c for c in comments(owner, n) if "<!-- bzzz:result:" in c["body"]]
        assert "done by b" in result["body"] and "on **b**" in result["body"]
        assert any("<!-- bzzz:handover:" in c["body"] for c in comments(owner, n))
        kinds = [e["type"] for e in read_entries(a.data_dir / "log") if e.get("issue") == n]
        assert "help_handed_over" in kinds


def test_with_llama_cpp_a_task_gets_the_model_answer(tmp_path, workdir):
    """The real engine: llama.cpp serving the tiny model the test writes (it always answers
    "the mesh is alive"), found through /v1/models, streamed, max_tokens honoured."""
    from bzzz.testing import llamacpp
    from bzzz.testing.tinymodel import write_tiny_model
    from .conftest import require
    ok, why = llamacpp.available()
    require(ok, why)
    with llamacpp.LlamaServer(write_tiny_model(tmp_path / "tiny.gguf")) as server, \
            DevHubThread(seed=SEED) as hub:
        owner = client(hub)
        full = owner.post("/repos/owner/tasks/issues", json={
            "title": "Ask the model", "labels": ["bzzz"],
            "body": "```bzzz llm model=tiny temperature=1\nIs the mesh up?\n```"}).json()["number"]
        short = owner.post("/repos/owner/tasks/issues", json={
            "title": "Ask briefly", "labels": ["bzzz"],
            "body": "```bzzz llm model=tiny max_tokens=2\nIs the mesh up?\n```"}).json()["number"]
        a, api = start_agent(tmp_path, "a", hub, workdir,
                             **llm_env(server.url, kind="openai", context=2048))
        try:
            wait_for(lambda: all("bzzz:done" in labels(owner, n) for n in (full, short)), 90,
                     what="both answered")
            caps = httpx.get(f"http://127.0.0.1:{api}/api/v1/status").json()["capabilities"]
        finally:
            a.terminate()
            a.wait(15)
        assert "llm:tiny" in caps and "ollama:tiny" not in caps  # discovered, OpenAI kind
        (r1,) = [c for c in comments(owner, full) if "<!-- bzzz:result:" in c["body"]]
        assert "the mesh is alive" in r1["body"]
        (r2,) = [c for c in comments(owner, short) if "<!-- bzzz:result:" in c["body"]]
        assert "the mesh" in r2["body"] and "the mesh is alive" not in r2["body"]
        assert "stopped at max_tokens (2)" in r2["body"]


def test_cancel_stops_an_llm_stream_mid_answer(tmp_path, workdir):
    slow = FakeModel(reply=[f"word{i} " for i in range(200)])
    with FakeOllamaThread({"slow": slow}) as fake, DevHubThread(seed=SEED) as hub:
        fake.app.chunk_delay = 0.1
        owner = client(hub)
        n = owner.post("/repos/owner/tasks/issues", json={
            "title": "Long answer", "labels": ["bzzz"],
            "body": "```bzzz llm model=slow\nTell me everything.\n```"}).json()["number"]
        a, _ = start_agent(tmp_path, "a", hub, workdir, **llm_env(fake.url))
        try:
            wait_for(lambda: fake.app.streams_open >= 1, 60, what="the answer streams")
            owner.post(f"/repos/owner/tasks/issues/{n}/comments", json={"body": "/bzzz cancel"})
            wait_for(lambda: fake.app.disconnects >= 1, 30, what="the stream closed")
            wait_for(lambda: "bzzz:failed" in labels(owner, n), 30, what="failed: cancelled")
        finally:
            a.terminate()
            a.wait(15)
        assert any("cancelled by @owner" in c["body"] for c in comments(owner, n))
