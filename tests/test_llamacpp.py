"""A real llama.cpp server (llama-cpp-python) serving the tiny model the tests write.

The model answers every prompt with exactly its reply, one token per word, so these tests
can check the OpenAI-compatible API to the token: plain and streaming chat, ``max_tokens``
cut-offs, sampling at temperature 1. Needs llama-cpp-python[server], which
``bash .ci/llama-wheel.sh .venv`` builds once (cached outside the repository) and installs;
outside CI the server tests skip without it, under CI they fail.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from bzzz.testing import llamacpp
from bzzz.testing.llamacpp import LlamaServer, LlamaServerError
from bzzz.testing.tinymodel import reply_pieces, write_tiny_model

from .conftest import require

REPLY = "the mesh is alive"
QUESTION = [
    {"role": "system", "content": "You are a Bzzz agent."},
    {"role": "user", "content": "Is the mesh up? Answer in one sentence."},
]


def need_llama() -> None:
    ok, reason = llamacpp.available()
    require(ok, reason)


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    need_llama()
    model = write_tiny_model(tmp_path_factory.mktemp("llm") / "tiny.gguf")
    with LlamaServer(model) as server:
        yield server


def chat(llm: LlamaServer, **body) -> dict:
    body = {"model": llm.alias, "messages": QUESTION, "temperature": 0.0, **body}
    resp = httpx.post(f"{llm.url}/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- the model file (no server) ---------------------------------------------------------


def test_model_is_small_fast_and_deterministic(tmp_path):
    start = time.perf_counter()
    a = write_tiny_model(tmp_path / "a.gguf")
    elapsed = time.perf_counter() - start
    b = write_tiny_model(tmp_path / "sub" / "b.gguf")
    assert a == tmp_path / "a.gguf" and b.parent.name == "sub"
    assert a.read_bytes() == b.read_bytes()
    assert 300_000 < a.stat().st_size < 800_000
    assert elapsed < 1.0
    assert a.read_bytes()[:4] == b"GGUF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gguf", "sub"]  # no temp files left
    assert write_tiny_model(tmp_path / "c.gguf", reply="other words").read_bytes() != a.read_bytes()


def test_model_reply_must_be_distinct_single_spaced_words():
    assert reply_pieces(REPLY) == ["the", "\u2581mesh", "\u2581is", "\u2581alive"]
    for bad in ("", "the the end", "two  spaces", " lead", "trail "):
        with pytest.raises(ValueError):
            reply_pieces(bad)


# -- the server -------------------------------------------------------------------------


def test_models_lists_the_alias(llm):
    assert llm.url == f"http://127.0.0.1:{llm.port}"
    resp = httpx.get(f"{llm.url}/v1/models", timeout=10)
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()["data"]] == ["tiny"]


def test_chat_answers_exactly_the_reply(llm):
    out = chat(llm)
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == REPLY
    assert choice["finish_reason"] == "stop"
    assert out["usage"]["completion_tokens"] == len(REPLY.split())
    assert out["model"] == "tiny"


def test_chat_max_tokens_cuts_after_that_many_words(llm):
    out = chat(llm, max_tokens=2)
    choice = out["choices"][0]
    assert choice["message"]["content"] == "the mesh"
    assert choice["finish_reason"] == "length"
    assert out["usage"]["completion_tokens"] == 2


def test_chat_at_temperature_one_still_gives_the_reply(llm):
    for seed in range(5):
        out = chat(llm, temperature=1.0, top_p=1.0, seed=seed)
        assert out["choices"][0]["message"]["content"] == REPLY
        assert out["choices"][0]["finish_reason"] == "stop"


def test_chat_any_prompt_gives_the_reply(llm):
    messages = [{"role": "user", "content": "x" * 300 + " the mesh is"}]
    assert chat(llm, messages=messages)["choices"][0]["message"]["content"] == REPLY


async def test_chat_streams_the_reply_as_sse(llm):
    body = {"model": llm.alias, "messages": QUESTION, "stream": True, "temperature": 0.7}
    events = []
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{llm.url}/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    events.append(line[len("data:"):].strip())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
    assert "".join(deltas) == REPLY
    assert [d for d in deltas if d] == ["the", " mesh", " is", " alive"]  # a token per chunk
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_text_completion_gives_the_reply(llm):
    body = {"model": llm.alias, "prompt": "Status of the mesh:", "max_tokens": 16}
    resp = httpx.post(f"{llm.url}/v1/completions", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["text"] == REPLY


def test_another_reply_and_a_clean_stop(tmp_path):
    need_llama()
    reply = "Hello, world! 42 ok"
    model = write_tiny_model(tmp_path / "hello.gguf", reply=reply)
    with LlamaServer(model, alias="hello") as server:
        body = {"model": "hello", "messages": [{"role": "user", "content": "hi"}]}
        resp = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
        assert resp.json()["choices"][0]["message"]["content"] == reply
        proc, port, log = server.proc, server.port, server.log_path
        assert log.exists()
    assert proc.poll() is not None and server.proc is None
    assert not log.exists()  # its own temporary log is removed
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_server_that_cannot_load_its_model_fails_with_its_log(tmp_path):
    need_llama()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all")
    start = time.monotonic()
    with pytest.raises(LlamaServerError) as err:
        LlamaServer(bad).start()
    assert time.monotonic() - start < 30
    assert "exited with code" in str(err.value)
    assert "the end of its log" in str(err.value)
