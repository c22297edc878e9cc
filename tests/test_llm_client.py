"""The LLM client (bzzz/exec/llm.py) against the fake Ollama (bzzz/testing/fakeollama.py), which
also serves the OpenAI-compatible /v1 API (with ``openai_only`` it answers /api/* with 404, as a
llama.cpp or vLLM server would)."""

from __future__ import annotations

import secrets
import socket
import time

import httpx
import pytest
import trio

from bzzz.exec.llm import (Answer, Endpoint, LLMError, context_length, estimate_tokens, probe,
                           stream_chat)
from bzzz.testing.fakeollama import DEFAULT_REPLY, FakeModel, FakeOllamaThread
from bzzz.testing.wait import WaitTimeout, wait_for, wait_until

HI = [{"role": "user", "content": "hi"}]
KINDS = ["ollama", "openai"]


@pytest.fixture(scope="module")
def server():
    with FakeOllamaThread({"llama3": FakeModel(context_length=32768),
                           "qwen2:7b": FakeModel(reply=["ok"])}) as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.app.reset()
    yield server.app
    try:  # streams a test walked away from end (and are counted)
        wait_for(lambda: not server.app.streams_open, 3, 0.01, "the fake's streams ended")
    except WaitTimeout:
        pass  # reset() below forgets them either way
    server.app.reset()


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


def ep(fake, kind="ollama", **kw) -> Endpoint:
    return Endpoint(fake.url, kind=kind, **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- discovery ---------------------------------------------------------------------------------

async def test_probe_finds_ollama_and_its_models(fake, http):
    found = await probe(http, Endpoint(fake.url + "/", models=["mistral"]), timeout=2)
    assert found.kind == "ollama" and found.url == fake.url
    assert found.models == ["llama3:latest", "llama3", "qwen2:7b", "mistral"]


async def test_probe_finds_an_openai_only_server(fake, http):
    fake.openai_only = True
    found = await probe(http, Endpoint(fake.url), timeout=2)
    assert found.kind == "openai"
    assert found.models == ["llama3:latest", "qwen2:7b"]
    # an OpenAI base URL ending in /v1 is understood without trying /api/tags
    before = len(fake.requests)
    found = await probe(http, Endpoint(fake.url + "/v1/", models=["extra"]), timeout=2)
    assert found.kind == "openai" and found.url == fake.url
    assert found.models == ["llama3:latest", "qwen2:7b", "extra"]
    assert [r["path"] for r in fake.requests[before:]] == ["/v1/models"]


async def test_probe_of_a_declared_kind_that_does_not_match(fake, http):
    fake.openai_only = True
    with pytest.raises(LLMError) as err:
        await probe(http, ep(fake, "ollama"), timeout=2)
    assert err.value.kind == "bad_reply" and not err.value.helpable


async def test_probe_of_nothing_listening_is_down(http):
    with pytest.raises(LLMError) as err:
        await probe(http, Endpoint(f"http://127.0.0.1:{closed_port()}"), timeout=2)
    assert err.value.kind == "down" and err.value.helpable
    assert "nothing answers" in str(err.value)


async def test_context_length(fake, http):
    assert await context_length(http, ep(fake), "llama3") == 32768
    assert await context_length(http, ep(fake), "llama3:latest") == 32768
    assert await context_length(http, ep(fake), "nosuch") is None
    assert await context_length(http, ep(fake, context=4096), "llama3") == 4096
    assert await context_length(http, ep(fake, "openai"), "llama3") is None
    assert await context_length(http, ep(fake, "openai", context=2048), "llama3") == 2048
    assert fake.last("/api/show") == {"model": "nosuch"}


# --- streaming ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
async def test_streams_deltas_and_the_final_answer(fake, http, kind):
    deltas: list[str] = []
    answer = await stream_chat(http, ep(fake, kind), "llama3", HI, system="be brief",
                               temperature=0.2, on_delta=deltas.append)
    assert isinstance(answer, Answer)
    assert deltas == DEFAULT_REPLY
    assert answer.text == "".join(DEFAULT_REPLY)
    assert answer.finish_reason == "stop"
    assert answer.tokens == len(DEFAULT_REPLY)
    assert answer.model == "llama3"
    assert 0 <= answer.first_token_s <= answer.total_s < 5
    path = "/api/chat" if kind == "ollama" else "/v1/chat/completions"
    sent = fake.last(path)
    assert sent["stream"] is True
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, *HI]
    if kind == "ollama":
        assert sent["options"] == {"temperature": 0.2}
    else:
        assert sent["temperature"] == 0.2 and sent["stream_options"] == {"include_usage": True}
    await wait_until(lambda: fake.streams_open == 0, 3, "the stream closed")
    assert fake.disconnects == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_max_tokens_is_passed_and_honoured(fake, http, kind):
    answer = await stream_chat(http, ep(fake, kind), "llama3", HI, max_tokens=3)
    assert answer.text == "".join(DEFAULT_REPLY[:3])
    assert answer.finish_reason == "length" and answer.tokens == 3
    if kind == "ollama":
        assert fake.last("/api/chat")["options"] == {"num_predict": 3}
    else:
        assert fake.last("/v1/chat/completions")["max_tokens"] == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_missing_model(fake, http, kind):
    with pytest.raises(LLMError) as err:
        await stream_chat(http, ep(fake, kind), "nosuch", HI)
    assert err.value.kind == "missing_model" and err.value.helpable
    assert err.value.status == 404
    assert "nosuch" in str(err.value) and "not found" in str(err.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_busy(fake, http, kind):
    fake.busy = True
    with pytest.raises(LLMError) as err:
        await stream_chat(http, ep(fake, kind), "llama3", HI)
    assert err.value.kind == "busy" and err.value.helpable and err.value.status == 503
    assert "server busy" in str(err.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_error_mid_stream(fake, http, kind):
    fake.error_after = 4
    deltas: list[str] = []
    with pytest.raises(LLMError) as err:
        await stream_chat(http, ep(fake, kind), "llama3", HI, on_delta=deltas.append)
    assert err.value.kind == "stream" and not err.value.helpable
    assert "an error was encountered while running the model" in str(err.value)
    assert err.value.partial == "".join(DEFAULT_REPLY[:4]) == "".join(deltas)


@pytest.mark.parametrize("kind", KINDS)
async def test_endpoint_down(http, kind):
    with pytest.raises(LLMError) as err:
        await stream_chat(http, Endpoint(f"http://127.0.0.1:{closed_port()}", kind=kind),
                          "llama3", HI, connect_timeout=2)
    assert err.value.kind == "down" and err.value.helpable


@pytest.mark.parametrize("kind", KINDS)
async def test_first_token_timeout(fake, http, kind):
    fake.first_token_delay = 5
    start = time.monotonic()
    with pytest.raises(LLMError) as err:
        await stream_chat(http, ep(fake, kind), "llama3", HI, first_token_timeout=0.3)
    assert time.monotonic() - start < 1.5
    assert err.value.kind == "timeout" and err.value.helpable
    assert "no first token within 0.3 s" in str(err.value)
    await wait_until(lambda: fake.streams_open == 0, 3, "the fake saw us go")


@pytest.mark.parametrize("kind", KINDS)
async def test_total_timeout(fake, http, kind):
    fake.models["slow:latest"] = FakeModel(reply=[f"w{i} " for i in range(50)])
    fake.chunk_delay = 0.05
    start = time.monotonic()
    try:
        with pytest.raises(LLMError) as err:
            await stream_chat(http, ep(fake, kind), "slow", HI, first_token_timeout=0.3,
                              total_timeout=0.6)
    finally:
        del fake.models["slow:latest"]
    assert 0.5 < time.monotonic() - start < 1.5
    assert err.value.kind == "timeout"
    assert "no complete answer within 0.6 s" in str(err.value)
    assert err.value.partial.startswith("w0 w1 ")  # past the first token: the total deadline


@pytest.mark.parametrize("kind", KINDS)
async def test_cancellation_closes_the_connection(fake, http, kind):
    fake.models["long:latest"] = FakeModel(reply=[f"w{i} " for i in range(200)])
    fake.chunk_delay = 0.02
    deltas: list[str] = []
    try:
        with trio.CancelScope() as scope:
            def on_delta(text: str) -> None:
                deltas.append(text)
                if len(deltas) == 3:
                    scope.cancel()
            await stream_chat(http, ep(fake, kind), "long", HI, on_delta=on_delta)
        cancelled_at = time.monotonic()
        assert scope.cancelled_caught and len(deltas) == 3
        await wait_until(lambda: fake.disconnects == 1, 2.0, "the disconnect seen")
        assert time.monotonic() - cancelled_at < 0.5
        assert fake.streams_open == 0
    finally:
        del fake.models["long:latest"]


async def test_errors_are_redacted(fake, http):
    key = "sk-bzzz-" + secrets.token_hex(12)
    fake.api_key = key  # the fake insists on it
    fake.error_after = 1
    fake.error_message = f"upstream rejected the key {key} for this model"
    for kind in KINDS:
        with pytest.raises(LLMError) as err:
            await stream_chat(http, ep(fake, kind, api_key=key), "llama3", HI)
        assert err.value.kind == "stream"
        assert key not in str(err.value) and key not in repr(err.value)
        assert "[redacted]" in str(err.value)
    # credentials in a URL are not shown either
    password = "pw-" + secrets.token_hex(8)
    url = f"http://user:{password}@127.0.0.1:{closed_port()}/?key={password}"
    with pytest.raises(LLMError) as err:
        await stream_chat(http, Endpoint(url, kind="ollama"), "llama3", HI)
    assert err.value.kind == "down" and password not in str(err.value)


async def test_a_refused_request_is_not_helpable(fake, http):
    fake.api_key = "sk-bzzz-" + secrets.token_hex(12)
    for kind in KINDS:
        with pytest.raises(LLMError) as err:
            await stream_chat(http, ep(fake, kind), "llama3", HI)
        assert err.value.kind == "refused" and err.value.status == 401
        assert not err.value.helpable


async def test_an_unresolved_kind_is_a_programming_error(fake, http):
    with pytest.raises(ValueError):
        await stream_chat(http, Endpoint(fake.url), "llama3", HI)


# --- the parsers on awkward byte streams (httpx's mock transport) --------------------------------

def stream_of(body: bytes, piece: int):
    async def chunks():
        for i in range(0, len(body), piece):
            yield body[i:i + piece]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


OLLAMA_BODY = (b'{"model":"m","message":{"role":"assistant","content":"Hel"},"done":false}\n'
               b'\n'
               b'{"model":"m","message":{"role":"assistant","content":"lo \\u00e9"},"done":false}\n'
               b'{"model":"m","message":{"role":"assistant","content":""},"done":true,'
               b'"done_reason":"stop","eval_count":2}')  # no final newline
SSE_BODY = (b': keep-alive comment\r\n\r\n'
            b'data: {"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}\r\n'
            b'\r\n'
            b'data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
            b'data: {"choices":[{"index":0,\n'
            b'data: "delta":{"content":"lo \\u00e9"},"finish_reason":"stop"}]}\n\n'
            b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
            b'data: [DONE]')  # no final blank line


@pytest.mark.parametrize("kind,body", [("ollama", OLLAMA_BODY), ("openai", SSE_BODY)])
@pytest.mark.parametrize("piece", [1, 7, 4096])
async def test_parsers_survive_any_split(kind, body, piece):
    deltas: list[str] = []
    async with stream_of(body, piece) as client:
        answer = await stream_chat(client, Endpoint("http://llm.test", kind=kind), "m", HI,
                                   on_delta=deltas.append)
    assert deltas == ["Hel", "lo é"]
    assert (answer.text, answer.finish_reason, answer.tokens) == ("Hello é", "stop", 2)


async def test_a_stream_cut_short_or_garbled():
    cut = OLLAMA_BODY.rsplit(b"\n", 1)[0] + b"\n"
    async with stream_of(cut, 50) as client:
        with pytest.raises(LLMError) as err:
            await stream_chat(client, Endpoint("http://llm.test", kind="ollama"), "m", HI)
    assert err.value.kind == "stream" and err.value.partial == "Hello é"
    async with stream_of(b"<html>proxy error</html>\n", 50) as client:
        with pytest.raises(LLMError) as err:
            await stream_chat(client, Endpoint("http://llm.test", kind="ollama"), "m", HI)
    assert err.value.kind == "bad_reply"
    no_done = SSE_BODY.replace(b'"finish_reason":"stop"', b'"finish_reason":null')
    no_done = no_done.replace(b"data: [DONE]", b"")
    async with stream_of(no_done, 50) as client:
        with pytest.raises(LLMError) as err:
            await stream_chat(client, Endpoint("http://llm.test", kind="openai"), "m", HI)
    assert err.value.kind == "stream"


# --- the fake's own protocol and small things -----------------------------------------------------

def test_the_fake_speaks_the_documented_shapes(server):
    server.app.reset()
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/api/version").json().keys() == {"version"}
        tag = c.get("/api/tags").json()["models"][0]
        assert {"name", "model", "modified_at", "size", "digest", "details"} <= tag.keys()
        chat = c.post("/api/chat", json={"model": "llama3", "messages": HI,
                                         "stream": False}).json()
        assert chat["done"] is True and chat["message"]["content"] == "".join(DEFAULT_REPLY)
        assert {"total_duration", "eval_count", "prompt_eval_count", "done_reason"} <= chat.keys()
        lines = c.post("/api/chat", json={"model": "llama3", "messages": HI}).text.splitlines()
        assert len(lines) == len(DEFAULT_REPLY) + 1  # streaming is the default
        v1 = c.post("/v1/chat/completions", json={"model": "llama3", "messages": HI}).json()
        assert v1["object"] == "chat.completion" and v1["usage"]["completion_tokens"] == 9
        missing = c.post("/api/show", json={"model": "nosuch"})
        assert missing.status_code == 404
        assert missing.json() == {"error": "model 'nosuch' not found"}
        assert c.get("/api/nothing").status_code == 404


def test_estimate_tokens():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("x" * 4000) == 1000


async def test_a_rotated_key_file_is_used_without_a_restart(fake, http, tmp_path):
    from bzzz.github.credentials import SecretFile
    path = tmp_path / "llm-key"
    old, new = "sk-old-" + secrets.token_hex(8), "sk-new-" + secrets.token_hex(8)
    path.write_text(old + "\n")
    key = SecretFile(path, "llm api_key_file")
    fake.api_key = old
    try:
        for kind in KINDS:
            await stream_chat(http, ep(fake, kind, api_key=key), "llama3", HI)
        fake.api_key = new  # the provider rotated it; the operator replaces the file
        path.write_text(new + "\n")
        for kind in KINDS:
            await stream_chat(http, ep(fake, kind, api_key=key), "llama3", HI)
    finally:
        fake.api_key = None
