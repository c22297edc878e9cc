"""The task gateway in a real agent (`bzzz run`, bubblewrap, task_network = "gateway"):
a hostile task from a GitHub issue reaches what task_egress allows and nothing else, the
refusals are listed on the issue and in the signed log, and the agent carries on."""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.hyperlog.store import read_entries
from bzzz.testing import image as image_helper
from bzzz.testing import podman as podman_helper
from bzzz.testing.agentclis import cli_bin, cli_path
from bzzz.testing.scriptedmodel import Edit, ScriptedModelThread
from bzzz.testing.fakeollama import FakeOllama, FakeOllamaThread
from bzzz.testing.wait import wait_for

from .conftest import require
from .helpers import free_port

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}

@pytest.fixture(autouse=True)
def _tools(request):
    if "podman" not in request.fixturenames:
        require(shutil.which("bwrap") is not None and shutil.which("curl") is not None,
                "needs bubblewrap and curl")


class _Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 -- http.server's name
        body = b"hello-through-the-gateway"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return  # quiet


def _serve(handler):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _comments(owner, n):
    return owner.get(f"/repos/owner/tasks/issues/{n}/comments").json()


def _agent_env(tmp_path, workdir, hub, **extra):
    """A `bzzz run` environment: bubblewrap, task_network = "gateway", devhub's owner/tasks."""
    (tmp_path / "token").write_text("t-bot\n")
    e = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    e.update({"BZZZ_NODE_ID": "gw", "BZZZ_DATA_DIR": str(tmp_path / "gw"),
              "BZZZ_LISTEN": "/ip4/127.0.0.1/tcp/0", "BZZZ_API_LISTEN": f"127.0.0.1:{free_port()}",
              "BZZZ_MDNS": "off", "BZZZ_GITHUB__POLL_INTERVAL": "0.3",
              "BZZZ_GITHUB__WRITE_INTERVAL": "0", "BZZZ_GITHUB__REPOS": "owner/tasks",
              "GITHUB_TOKEN_FILE": str(tmp_path / "token"), "BZZZ_HELP_REQUESTS": "off",
              "BZZZ_WORKSPACE_DIR": os.path.join(workdir, "gw"), "BZZZ_SANDBOX": "bwrap",
              "BZZZ_TASK_NETWORK": "gateway", "BZZZ_GITHUB__URL": hub.url, **extra})
    return e


@contextmanager
def _running(tmp_path, env):
    """The agent, stopped (cleanly) at the end."""
    proc = subprocess.Popen([sys.executable, "-m", "bzzz", "run"], env=env,
                            stdout=open(tmp_path / "gw.log", "ab"), stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def _result(owner, title, script, mark):
    """File a task running ``script``; its comment holding ``mark``, once there."""
    n = owner.post("/repos/owner/tasks/issues", json={
        "title": title, "body": f"```bzzz\n{script}\n```", "labels": ["bzzz"]}).json()["number"]
    wait_for(lambda: any(mark in c["body"] for c in _comments(owner, n)), 90,
             what=f"the result comment of {title!r}")
    return n, next(c["body"] for c in _comments(owner, n) if mark in c["body"])


def test_a_hostile_task_gets_out_only_through_the_gateway(tmp_path, workdir):
    origin, denied = _serve(_Origin), _serve(_Origin)
    oport, dport = origin.server_address[1], denied.server_address[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    api, p2p = free_port(), free_port()
    probes = " ".join([f"127.0.0.1:{api}", f"[::1]:{api}", "169.254.169.254:80",
                       f"127.0.0.1:{p2p}", f"127.0.0.1:{oport}"])
    script = "\n".join([
        f"curl -sS -m 10 http://127.0.0.1:{oport}/allowed; echo",
        f"for t in {probes}; do",
        "  curl --noproxy '*' -sS -m 3 -o /dev/null \"http://$t/\" 2>/dev/null"
        " && echo \"reached $t\" || echo \"blocked $t\"",
        "done",
        "env -u http_proxy -u HTTP_PROXY -u all_proxy -u ALL_PROXY "
        f"curl -sS -m 3 -o /dev/null http://127.0.0.1:{api}/healthz 2>/dev/null"
        " && echo reached-unset || echo blocked-unset",
        f"curl -sS -m 10 http://127.0.0.1:{dport}/; echo",
        "getent hosts example.org >/dev/null && echo resolved || echo no-dns",
        "python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        f"s.sendto(b'x', ('127.0.0.1', {udp.getsockname()[1]})); print('udp-sent')\"",
    ])
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        env = _agent_env(tmp_path, workdir, hub, BZZZ_LISTEN=f"/ip4/127.0.0.1/tcp/{p2p}",
                         BZZZ_API_LISTEN=f"127.0.0.1:{api}",
                         BZZZ_TASK_EGRESS=f"127.0.0.1:{oport}")
        with _running(tmp_path, env):
            _, body = _result(owner, "reach out", script, "🌐")
            assert "hello-through-the-gateway" in body, body
            for t in probes.split()[:-1] + [f"127.0.0.1:{oport}"]:
                assert f"blocked {t}" in body, (t, body)  # no raw socket gets out
            for word in ("blocked-unset", "no-dns", "udp-sent", "not on this task's allowlist"):
                assert word in body, (word, body)
            assert f"`127.0.0.1:{dport}`" in body and "🚫 Refused" in body
            with pytest.raises(OSError):
                udp.recvfrom(16)  # the datagram stayed in the sandbox's own loopback
            # the agent carries on, and the log has the task's egress as one decision
            assert httpx.get(f"http://127.0.0.1:{api}/healthz").status_code == 200
            wait_for(lambda: any(d.get("type") == "egress" for d in
                                 read_entries(tmp_path / "gw" / "log")), 30,
                     what="the egress decision")
            egress = next(d for d in read_entries(tmp_path / "gw" / "log")
                          if d.get("type") == "egress")
            assert egress["hosts"] == [f"127.0.0.1:{oport}"] and egress["requests"] == 1
            assert egress["refused"] == [f"127.0.0.1:{dport}"]
            metrics = httpx.get(f"http://127.0.0.1:{api}/metrics").text
            assert 'bzzz_gateway_refused_total{host="127.0.0.1"} 1.0' in metrics, metrics
            assert 'bzzz_gateway_bytes_total{direction="in"}' in metrics
    origin.shutdown()
    denied.shutdown()
    log = (tmp_path / "gw.log").read_text()
    assert "only the task gateway" in log  # the start-up line says how tasks are confined


def test_model_routes_hold_the_key_and_a_refused_model_fails_the_run(tmp_path, workdir):
    """A task asks the node's model through OPENAI_BASE_URL with the capability it was
    given: the gateway adds the key, the task never sees it, the tokens are on the issue. With
    a key the model refuses, the task's command still exits 0, and the run is failed."""
    key = tmp_path / "llm.key"
    key.write_text("sk-the-real-one\n")
    ask = ("curl -sS -m 20 \"$OPENAI_BASE_URL/chat/completions\" "
           "-H \"Authorization: Bearer $OPENAI_API_KEY\" -H 'Content-Type: application/json' "
           "-d '{\"model\": \"llama3\", \"messages\": [{\"role\": \"user\", "
           "\"content\": \"hello\"}]}'; echo; env | grep -c sk-the-real-one || true")
    with FakeOllamaThread() as fake, DevHubThread(seed=SEED) as hub:
        fake.app.api_key = "sk-the-real-one"
        llm = json.dumps([{"url": fake.url, "kind": "openai", "name": "local",
                           "api_key_file": str(key)}])
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        with _running(tmp_path, _agent_env(tmp_path, workdir, hub, BZZZ_LLM=llm)):
            _, body = _result(owner, "ask the model", ask, "🤖")
            assert "chat.completion" in body and "✅ **succeeded**" in body, body
            assert "sk-the-real-one" not in body
            assert "\n0\n" in body  # no variable of the task holds the key
            assert fake.app.requests[-1]["path"] == "/v1/chat/completions"
            assert "🤖 Model `local`: 1 requests" in body
            # the model now refuses the node's key: the command exits 0, the run is failed
            fake.app.api_key = "sk-rotated-elsewhere"
            m, body = _result(owner, "ask again", ask, "🤖")
            assert "❌ **failed**" in body and "answered 401" in body, body
            wait_for(lambda: "bzzz:failed" in {
                x["name"] for x in owner.get(f"/repos/owner/tasks/issues/{m}").json()["labels"]},
                30, what="the failed label")
    assert "sk-the-real-one" not in (tmp_path / "gw.log").read_text()


def test_a_spent_budget_stops_the_task_and_the_issue_says_which(tmp_path, workdir):
    ask = ("for i in 1 2 3 4 5 6; do curl -sS -m 20 \"$OPENAI_BASE_URL/chat/completions\" "
           "-H \"Authorization: Bearer $OPENAI_API_KEY\" -H 'Content-Type: application/json' "
           "-d '{\"model\": \"llama3\", \"messages\": [{\"role\": \"user\", \"content\": "
           "\"more\"}]}' -o /dev/null; echo \"call $i\"; done; sleep 60; echo not-stopped")
    with FakeOllamaThread() as fake, DevHubThread(seed=SEED) as hub:
        fake.app.set_models({"llama3": [f"w{i} " for i in range(40)]})
        llm = json.dumps([{"url": fake.url, "kind": "openai", "name": "local"}])
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        with _running(tmp_path, _agent_env(tmp_path, workdir, hub, BZZZ_LLM=llm,
                                           BZZZ_TASK_BUDGET__TOKENS="60")):
            _, body = _result(owner, "spend", ask, "⛔")
            assert "❌ **failed**" in body, body
            assert "the task's budget for model tokens spent" in body and "of 60" in body
            assert "not-stopped" not in body
            chats = [r for r in fake.app.requests if r["path"] == "/v1/chat/completions"]
            assert len(chats) == 2  # the second answer passed the budget: no third

def _put_file(owner, path, text):
    """Commit one file to owner/tasks's main branch through the git data API."""
    head = owner.get("/repos/owner/tasks/git/ref/heads/main").json()["object"]["sha"]
    tree = owner.get(f"/repos/owner/tasks/git/commits/{head}").json()["tree"]["sha"]
    blob = owner.post("/repos/owner/tasks/git/blobs", json={
        "content": text, "encoding": "utf-8"}).json()["sha"]
    new_tree = owner.post("/repos/owner/tasks/git/trees", json={"base_tree": tree, "tree": [
        {"path": path, "mode": "100644", "type": "blob", "sha": blob}]}).json()["sha"]
    commit = owner.post("/repos/owner/tasks/git/commits", json={
        "message": f"add {path}", "tree": new_tree, "parents": [head]}).json()["sha"]
    assert owner.patch("/repos/owner/tasks/git/refs/heads/main",
                       json={"sha": commit}).status_code == 200


def test_a_repository_adds_egress_within_the_nodes_ceiling(tmp_path, workdir):
    wanted = _serve(_Origin)
    port = wanted.server_address[1]
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        _put_file(owner, ".bzzz.toml",
                  f'[task]\negress = ["127.0.0.1:{port}", "evil.example"]\n')
        env = _agent_env(tmp_path, workdir, hub, BZZZ_TASK_EGRESS_MAX=f"127.0.0.1:{port}")
        with _running(tmp_path, env):
            _, body = _result(owner, "fetch", f"curl -sS -m 10 http://127.0.0.1:{port}/; echo",
                              "🌐")
            assert "hello-through-the-gateway" in body, body
            assert "`.bzzz.toml` asked for `evil.example`, beyond this node's" in body
    wanted.shutdown()


def _llm_result(tmp_path, workdir, hub, fake, mark, price=None, **env):
    owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
    llm = json.dumps([{"url": fake.url, "name": "local", **(price or {})}])
    with _running(tmp_path, _agent_env(tmp_path, workdir, hub, BZZZ_LLM=llm,
                                       BZZZ_DETECT_CAPABILITIES="off", **env)):
        owner.post("/repos/owner/tasks/issues", json={
            "title": "say it", "labels": ["bzzz"],
            "body": "```bzzz llm model=llama3\nSay something.\n```"})
        wait_for(lambda: any(mark in c["body"] for c in _comments(owner, 1)), 90,
                 what="the llm task's result")
        return next(c["body"] for c in _comments(owner, 1) if mark in c["body"])


def test_the_llm_executors_own_calls_are_on_the_tasks_account(tmp_path, workdir):
    with FakeOllamaThread() as fake, DevHubThread(seed=SEED) as hub:
        body = _llm_result(tmp_path, workdir, hub, fake, "🤖",
                           price={"price_in": 3.0, "price_out": 15.0})
        chat = [r for r in fake.app.requests if "chat" in r["path"]][-1]
        served_in = FakeOllama._prompt_tokens(chat["body"])
        served_out = len(fake.app.models["llama3:latest"].reply)
        cost = (served_in * 3.0 + served_out * 15.0) / 1e6  # priced as the endpoint says
        assert (f"🤖 Model `llama3`: 0 requests, {served_in:,} tokens in, {served_out:,} out, "
                f"about ${cost:,.4f}.") in body, body


def test_a_budget_stops_the_llm_executor_midway(tmp_path, workdir):
    with FakeOllamaThread() as fake, DevHubThread(seed=SEED) as hub:
        fake.app.set_models({"llama3": [f"w{i} " for i in range(200)]})
        fake.app.chunk_delay = 0.01
        body = _llm_result(tmp_path, workdir, hub, fake, "⛔", BZZZ_TASK_BUDGET__TOKENS="50")
        assert "❌ **failed**" in body and "model tokens spent" in body, body
        assert fake.app.disconnects >= 1 or fake.app.streams_open == 0


# -- the container sandbox: the gateway through a side container (bzzz/exec/sidecar.py) ----

@pytest.fixture(scope="module")
def podman():
    ok, reason = podman_helper.available()
    require(ok, reason)
    with podman_helper.PodmanService() as service:
        image_helper.load_base(service)  # the side container's python3
        yield service


def test_a_hostile_container_task_gets_out_only_through_the_gateway(tmp_path, workdir, podman):
    """The same hostile task in the container sandbox (a busybox image with no python, an
    agent running as root, the task as nobody): the allowlist's host through the proxy, and
    nothing else, the proxy variables unset included; refusals listed on the issue. The same
    agent runs a coding-agent preset (Claude Code, a native binary) in a container of the
    base image (python3 and git): its installation bind-mounted read-only, its model reached
    through the side container, a pull request opened."""
    require(cli_path("claude") is not None, "claude is not installed (bash .ci/agent-clis.sh)")
    origin, denied = _serve(_Origin), _serve(_Origin)
    oport, dport = origin.server_address[1], denied.server_address[1]
    api, p2p = free_port(), free_port()
    probes = [f"127.0.0.1 {api}", f"::1 {api}", "169.254.169.254 80", f"127.0.0.1 {p2p}",
              f"127.0.0.1 {oport}"]
    script = "\n".join([
        f"wget -q -O - http://127.0.0.1:{oport}/allowed; echo",
        *[f"(echo x | nc -w 2 {t}; exit $?) >/dev/null 2>&1 && echo 'reached {t}' "
          f"|| echo 'blocked {t}'" for t in probes],
        f"(unset http_proxy HTTP_PROXY; wget -q -T 3 -O - http://127.0.0.1:{api}/healthz; "
        "exit $?) >/dev/null 2>&1 && echo reached-unset || echo blocked-unset",
        f"wget -q -O - http://127.0.0.1:{dport}/ 2>&1; echo",
        "nslookup example.org >/dev/null 2>&1 && echo resolved || echo no-dns",
    ])
    with DevHubThread(seed=SEED) as hub, ScriptedModelThread(
            Edit("README.md", "# tasks", "# tasks, kept by agents")) as model:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        llm = json.dumps([{"url": model.url, "kind": "anthropic", "name": "claude",
                           "models": ["scripted"]},
                          {"url": model.url, "kind": "openai", "name": "local",
                           "models": ["scripted"]}])
        env = _agent_env(tmp_path, workdir, hub, BZZZ_LISTEN=f"/ip4/127.0.0.1/tcp/{p2p}",
                         BZZZ_API_LISTEN=f"127.0.0.1:{api}", BZZZ_SANDBOX="container",
                         BZZZ_DOCKER_HOST=podman.docker_host, BZZZ_TASK_IMAGE=podman.image,
                         BZZZ_GATEWAY_IMAGE=image_helper.BASE_TAG,
                         BZZZ_TASK_EGRESS=f"127.0.0.1:{oport}", BZZZ_MAX_TASKS="2",
                         BZZZ_AGENT="claude-code,codex", BZZZ_AGENT_MODEL="scripted",
                         BZZZ_AGENT_IMAGE=image_helper.BASE_TAG,
                         BZZZ_AGENT_PATH=str(cli_bin()), BZZZ_LLM=llm,
                         BZZZ_DETECT_CAPABILITIES="off", BZZZ_PROGRESS_INTERVAL="0")
        with _running(tmp_path, env):
            # the preset's task (in agent_image) beside the hostile one
            wait_for(lambda: "agent:claude-code" in httpx.get(
                f"http://127.0.0.1:{api}/api/v1/status").json()["capabilities"], 60,
                what="the preset announced")
            # Codex's launcher needs node, which the image lacks: probed at start, not run
            # and not announced, the reason in the status document
            status = httpx.get(f"http://127.0.0.1:{api}/api/v1/status").json()
            assert "agent:codex" not in status["capabilities"], status["capabilities"]
            assert "cannot run codex" in json.dumps(status["agent_presets"]), \
                status["agent_presets"]
            edit = owner.post("/repos/owner/tasks/issues", json={
                "title": "Who keeps the tasks", "body": "Say it in the README.",
                "labels": ["bzzz"]}).json()["number"]
            _, body = _result(owner, "reach out from a container", script, "🌐")
            assert "hello-through-the-gateway" in body, body
            for t in probes:
                assert f"blocked {t}" in body, (t, body)
            for word in ("blocked-unset", "no-dns", "not on this task's allowlist"):
                assert word in body, (word, body)
            assert f"`127.0.0.1:{dport}`" in body and "🚫 Refused" in body
            assert httpx.get(f"http://127.0.0.1:{api}/healthz").status_code == 200
            wait_for(lambda: any("bzzz:result:" in c["body"] for c in _comments(owner, edit)),
                     90, what="the preset's result")
            result = next(c["body"] for c in _comments(owner, edit)
                          if "bzzz:result:" in c["body"])
            assert "opened pull request" in result and "🔧 Edit" in result, result
            assert "🧑‍💻 claude-code (`scripted`)" in result, result
            keys = {r["headers"].get("x-api-key") for r in model.model.requests if r["body"]}
            assert keys and not any(k and "bzzz-task-" in k for k in keys), keys
            assert podman.containers("bzzz.node=gw") == []  # task and side container gone
    origin.shutdown()
    denied.shutdown()
    assert "its forwarder in a side container" in (tmp_path / "gw.log").read_text()
