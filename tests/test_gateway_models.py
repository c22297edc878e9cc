"""Model routes through the task gateway (bzzz/gateway/models.py): the official openai,
anthropic and ollama Python clients, run in a real bubblewrap sandbox with only the gateway,
reach scripted model servers with the keys the gateway holds; the sandbox never sees a key;
the tokens the gateway counts are the servers' own, streams included."""

import http.server
import importlib.util
import json
import shutil
import sys
import threading
from pathlib import Path

import trio

from bzzz.gateway import forwarder, inside
from bzzz.gateway.allow import Allowlist
from bzzz.gateway.models import ModelEndpoint, model_env
from bzzz.gateway.proxy import Gateway
from bzzz.gateway.usage import Meter
from bzzz.testing.fakeanthropic import anthropic_handler
from bzzz.testing.fakeollama import FakeOllama, FakeOllamaThread

from .conftest import require
from .helpers import unix_exchange

REAL_KEY = "sk-real-key-held-by-the-agent"
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


# -- the usage meter (a core) ---------------------------------------------------------------

def test_the_meter_reads_every_dialect_in_any_pieces():
    cases = [
        ("application/json", b'{"usage": {"prompt_tokens": 7, "completion_tokens": 5}}', (7, 5)),
        ("application/json", b'{"usage": {"input_tokens": 3, "output_tokens": 9}}', (3, 9)),
        ("text/event-stream", b'data: {"choices": [], "usage": null}\n\ndata: {"choices": [],'
         b' "usage": {"prompt_tokens": 4, "completion_tokens": 2}}\n\ndata: [DONE]\n\n', (4, 2)),
        ("text/event-stream", b'event: message_start\ndata: {"type": "message_start", "message":'
         b' {"usage": {"input_tokens": 25, "output_tokens": 1}}}\n\nevent: message_delta\n'
         b'data: {"type": "message_delta", "usage": {"output_tokens": 15}}\n\n', (25, 15)),
        ("application/x-ndjson", b'{"done": false}\n{"done": true, "prompt_eval_count": 6, '
         b'"eval_count": 8}\n', (6, 8)),
        ("text/event-stream", b'data: {"type": "response.completed", "response": {"usage": '
         b'{"input_tokens": 2, "output_tokens": 3}}}\n\n', (2, 3)),
        ("application/json", b"not json", (0, 0)),
    ]
    for ctype, body, want in cases:
        for size in (1, 7, len(body)):
            m = Meter(ctype)
            for i in range(0, len(body), size):
                m.feed(body[i:i + size])
            m.close()
            assert (m.tokens_in, m.tokens_out) == want, (ctype, size, body)


def test_the_task_sees_capabilities_never_keys():
    eps = [ModelEndpoint("oai", "http://x", "openai", lambda: REAL_KEY),
           ModelEndpoint("oll", "http://y", "ollama"),
           ModelEndpoint("claude", "https://z", "anthropic", lambda: REAL_KEY)]
    env = model_env("http://127.0.0.1:3128", eps, "cap-1")
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:3128/llm/oai/v1"
    assert env["OLLAMA_HOST"] == "http://127.0.0.1:3128/llm/oll"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:3128/llm/claude"
    assert env["OPENAI_API_KEY"] == env["ANTHROPIC_API_KEY"] == "cap-1"
    assert REAL_KEY not in json.dumps(env)


CLIENTS = r"""
import json, os, sys
import anthropic, ollama, openai
out = {"env": {k: v for k, v in os.environ.items() if "KEY" in k}}
oai = openai.OpenAI()
r = oai.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "hi there"}])
out["openai"] = r.choices[0].message.content
text = ""
for chunk in oai.chat.completions.create(model="llama3", stream=True,
                                         messages=[{"role": "user", "content": "stream it"}]):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
out["openai_stream"] = text
cl = anthropic.Anthropic()
m = cl.messages.create(model="claude-x", max_tokens=64,
                       messages=[{"role": "user", "content": "hello"}])
out["anthropic"] = m.content[0].text
with cl.messages.stream(model="claude-x", max_tokens=64,
                        messages=[{"role": "user", "content": "stream please"}]) as s:
    out["anthropic_stream"] = "".join(s.text_stream)
text = ""
for part in ollama.Client().chat(model="llama3", stream=True,
                                 messages=[{"role": "user", "content": "native"}]):
    text += part["message"]["content"]
out["ollama_stream"] = text
try:
    openai.OpenAI(api_key="sk-guessed").models.list()
    out["guessed"] = "accepted"
except openai.AuthenticationError:
    out["guessed"] = "refused"
print(json.dumps(out))
"""


async def test_official_clients_in_a_sandbox_use_the_agents_keys_through_the_gateway(tmp_path):
    require(shutil.which("bwrap") is not None, "bubblewrap is not installed")
    require(all(importlib.util.find_spec(m) for m in ("openai", "anthropic", "ollama")),
            "the openai, anthropic and ollama clients are not installed (the test extras)")
    anthropic_server = anthropic_handler(key=REAL_KEY)
    claude = http.server.ThreadingHTTPServer(("127.0.0.1", 0), anthropic_server)
    threading.Thread(target=claude.serve_forever, daemon=True).start()
    script = tmp_path / "clients.py"
    script.write_text(CLIENTS)
    try:
        with FakeOllamaThread() as fake:
            fake.app.api_key = REAL_KEY
            eps = [ModelEndpoint("local", fake.url, "openai", lambda: REAL_KEY),
                   ModelEndpoint("native", fake.url, "ollama", lambda: REAL_KEY),
                   ModelEndpoint("claude", f"http://127.0.0.1:{claude.server_address[1]}",
                                 "anthropic", lambda: REAL_KEY)]
            gw = Gateway(tmp_path / "gw", models=eps)
            async with gw.route("t1", Allowlist()) as route:
                env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **route.env()}
                cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                       "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run",
                       *inside.bwrap_args(route.socket_path, Path(forwarder.__file__)),
                       *inside.wrap_argv(SYSTEM_PYTHON, [sys.executable, str(script)])]
                done = await trio.run_process(cmd, env=env, capture_stdout=True,
                                              capture_stderr=True, check=False)
                assert done.returncode == 0, done.stderr.decode()[-3000:]
                out = json.loads(done.stdout)
            reply = "".join(FakeOllama().models["llama3:latest"].reply)
            assert out["openai"] == out["openai_stream"] == out["ollama_stream"] == reply
            assert out["anthropic"] == out["anthropic_stream"] == "Hello from the scripted server"
            assert out["guessed"] == "refused"
            assert REAL_KEY not in json.dumps(out["env"])
            # the tokens counted are exactly the servers' own
            models = route.egress.doc()["models"]
            served = [(FakeOllama._prompt_tokens(r["body"]), len(fake.app.models[
                "llama3:latest"].reply)) for r in fake.app.requests if "chat" in r["path"]]
            assert [r["path"] for r in fake.app.requests if "chat" in r["path"]] == [
                "/v1/chat/completions", "/v1/chat/completions", "/api/chat"]
            assert (models["local"]["tokens_in"], models["local"]["tokens_out"]) == (
                served[0][0] + served[1][0], served[0][1] + served[1][1])
            assert (models["native"]["tokens_in"], models["native"]["tokens_out"]) == served[2]
            assert (models["claude"]["tokens_in"], models["claude"]["tokens_out"]) == (
                sum(i for i, _ in anthropic_server.served), sum(o for _, o in anthropic_server.served))
            assert models["local"]["requests"] == 2 and models["local"]["refused"] == 1  # the guess
            assert route.egress.model_failure is None
            await gw.aclose()
    finally:
        claude.shutdown()


async def test_a_capability_works_for_its_own_task_only(tmp_path):
    with FakeOllamaThread() as fake:
        fake.app.api_key = REAL_KEY
        gw = Gateway(tmp_path / "gw", models=[
            ModelEndpoint("local", fake.url, "openai", lambda: REAL_KEY)])
        ask = "GET /llm/local/v1/models HTTP/1.1\r\nAuthorization: Bearer {}\r\n\r\n"
        async with gw.route("a", Allowlist()) as a:
            async with gw.route("b", Allowlist()) as b:
                assert (await unix_exchange(b.socket_path, ask.format(b.capability).encode())
                        ).startswith(b"HTTP/1.1 200")
                theirs = await unix_exchange(b.socket_path, ask.format(a.capability).encode())
                assert theirs.startswith(b"HTTP/1.1 401"), theirs
                assert REAL_KEY.encode() not in theirs
            assert not b.socket_path.exists()  # b ended: its way out, and key, are gone
        # only the model APIs: not the account's other business, however the path is spelt
        async with gw.route("d", Allowlist()) as d:
            for path in ("/llm/local/v1/files", "/llm/local/v1/../admin",
                         "/llm/local/v1/models/..%2F..%2Fadmin", "/llm/local//v1/models"):
                out = await unix_exchange(d.socket_path, ask.replace(
                    "/llm/local/v1/models", path).format(d.capability).encode())
                assert out.startswith(b"HTTP/1.1 403"), (path, out[:120])
            assert len([r for r in fake.app.requests if "admin" in r["path"]
                        or "files" in r["path"]]) == 0
        # a model that refuses the agent's key: the run is marked as failed
        fake.app.api_key = "another"
        async with gw.route("c", Allowlist()) as c:
            out = await unix_exchange(c.socket_path, ask.format(c.capability).encode())
            assert out.startswith(b"HTTP/1.1 401")
            assert "answered 401" in (c.egress.model_failure or "")
        await gw.aclose()


# -- budgets ------------------------------------------------------------------------------------

def test_a_spend_says_which_budget_it_passed():
    from bzzz.gateway.budget import Budget, Spend
    assert not Budget() and Budget(tokens=0)
    s = Spend()
    s.add(tokens=1200, requests=3, bytes_=10, cost=0.5)
    assert s.over(Budget(tokens=1500, requests=5), "the task's") is None
    assert s.over(Budget(tokens=1000), "the task's") == (
        "the task's budget for model tokens spent: 1,200 used of 1,000")
    assert "estimated cost (USD) spent: 0.5000 used of 0.2500" in s.over(Budget(cost=0.25), "x")


CHAT = ('POST /llm/local/v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer {cap}\r\n'
        'Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n{body}')


def _chat(cap: str, stream: bool) -> bytes:
    body = json.dumps({"model": "llama3", "stream": stream,
                       "messages": [{"role": "user", "content": "x" * 40}]})
    return CHAT.format(cap=cap, n=len(body), body=body).encode()


async def test_a_budget_stops_a_stream_midway_and_a_repository_has_a_daily_ceiling(tmp_path):
    from bzzz.gateway.budget import Budget
    reply = [f"w{i} " for i in range(40)]
    with FakeOllamaThread() as fake:
        fake.app.set_models({"llama3": reply})
        fake.app.chunk_delay = 0.01
        gw = Gateway(tmp_path / "gw", models=[ModelEndpoint("local", fake.url, "openai")],
                     budget=Budget(tokens=25), daily_budget=Budget(requests=3))
        told: list[str] = []
        async with gw.route("o/r#1", Allowlist(), repo="o/r", on_exceeded=told.append) as a:
            out = await unix_exchange(a.socket_path, _chat(a.capability, True))
            assert out.startswith(b"HTTP/1.1 200")
            assert out.count(b"data: {") < len(reply)  # cut midway, not at the end
            assert told == [a.exceeded] and "model tokens spent" in a.exceeded
            again = await unix_exchange(a.socket_path, _chat(a.capability, False))
            assert again.startswith(b"HTTP/1.1 429") and b"model tokens spent" in again
            assert a.egress.doc()["budget_exceeded"] == a.exceeded
        # the repository's day: 1 request spent above, 2 more for another task, then no more
        async with gw.route("o/r#2", Allowlist(), repo="o/r") as b:
            b.budget = Budget()  # this task alone has no limit of its own
            for _ in range(2):
                assert (await unix_exchange(b.socket_path, _chat(b.capability, False))
                        ).startswith(b"HTTP/1.1 200")
            last = await unix_exchange(b.socket_path, _chat(b.capability, False))
            assert last.startswith(b"HTTP/1.1 429"), last[:200]
            assert b"the repository's daily budget for requests spent: 4 used of 3" in last
        async with gw.route("x/y#1", Allowlist(), repo="x/y") as c:  # another repository
            c.budget = Budget()
            assert (await unix_exchange(c.socket_path, _chat(c.capability, False))
                    ).startswith(b"HTTP/1.1 200")
        await gw.aclose()
