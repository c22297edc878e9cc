import json
import logging

import httpx

from bzzz import logs

from .helpers import start_agent


async def test_endpoints(tmp_path, nursery):
    agent = await start_agent(nursery, tmp_path, "a")
    base = agent.api.bound[0]
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/healthz")).status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        names = {line.split("{")[0].split(" ")[0] for line in metrics.text.splitlines()
                 if line and not line.startswith("#")}
        assert names and all(n.startswith("bzzz_") for n in names)
        assert "bzzz_pubsub_bad_signatures_total" in names
        assert {"bzzz_dials_total", "bzzz_dial_failures_total"} <= names
        status = (await client.get("/api/v1/status")).json()
        assert status["peer_id"] == agent.peer_id
        assert (await client.get("/nope")).status_code == 404
        assert (await client.post("/healthz")).status_code == 405


def test_secrets_are_redacted_in_json_and_text(caplog):
    token = "ghp_" + "S3cretT0ken" * 3
    logs.register_secret(token)
    record = logging.LogRecord("bzzz.test", logging.ERROR, __file__, 1,
                               "request failed with %s", (f"Authorization: token {token}",), None)
    record.header = token
    as_json = logs.JsonFormatter("n1").format(record)
    as_text = logs.TextFormatter().format(record)
    for out in (as_json, as_text):
        assert token not in out and "[redacted]" in out
    assert json.loads(as_json)["node"] == "n1"


async def test_read_body_joins_chunks_and_stops_past_the_limit():
    from bzzz.asgi import read_body

    def receiver(chunks):
        messages = [{"body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive():
            return messages.pop(0)
        return receive

    assert await read_body(receiver([b"ab", b"cd", b"e"]), limit=5) == b"abcde"
    assert await read_body(receiver([b"abc", b"def"]), limit=5) is None


async def test_http_request_answers_lifespan_and_reads_the_request():
    from bzzz.asgi import http_request, respond

    sent = []

    async def send(message):
        sent.append(message)

    lifespan = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive_lifespan():
        return lifespan.pop(0)

    assert await http_request({"type": "lifespan"}, receive_lifespan, send) is None
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    assert await http_request({"type": "websocket"}, receive_lifespan, send) is None

    body = [{"body": b"hel", "more_body": True}, {"body": b"lo"}]

    async def receive():
        return body.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/x", "query_string": b"a=1&b=2&a=3",
             "headers": [(b"Content-Length", b"5"), (b"X-Thing", b"v")]}
    request = await http_request(scope, receive, send)
    assert (request.method, request.path) == ("POST", "/x")
    assert request.query == {"a": "3", "b": "2"}
    assert request.headers["x-thing"] == "v"
    assert await request.body(limit=5) == b"hello"
    sent.clear()
    await respond(send, 201, b"done", "text/plain", [(b"x-extra", b"1")])
    assert sent[0] == {"type": "http.response.start", "status": 201, "headers": [
        (b"content-type", b"text/plain"), (b"content-length", b"4"), (b"x-extra", b"1")]}
    assert sent[1] == {"type": "http.response.body", "body": b"done"}


async def test_acting_endpoints_need_the_bearer_token(tmp_path, nursery):
    token_file = tmp_path / "api-token"
    token_file.write_text("api-secret-0123456789\n")
    agent = await start_agent(nursery, tmp_path, "a", api_token_file=token_file)
    async with httpx.AsyncClient(base_url=agent.api.bound[0]) as client:
        body = {"needs": ["nothing"], "wait": 0.1}
        none = await client.post("/api/v1/help/probe", json=body)
        assert none.status_code == 401 and "bearer" in none.headers["www-authenticate"].lower()
        wrong = await client.post("/api/v1/help/probe", json=body,
                                  headers={"Authorization": "Bearer api-secret-0123456788"})
        assert wrong.status_code == 401
        right = await client.post("/api/v1/help/probe", json=body,
                                  headers={"Authorization": "Bearer api-secret-0123456789"})
        assert right.status_code == 200 and "offers" in right.json()
        # reading stays open, and the token never appears in what is served
        status = await client.get("/api/v1/status")
        assert status.status_code == 200 and "api-secret" not in status.text


def test_beyond_loopback_without_a_token_refuses_to_act():
    from bzzz.api import Api, is_loopback
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    api = Api(lambda: {}, lambda: b"", token=None, loopback=False)
    denied = api._denied({"headers": []})
    assert denied is not None and denied[0] == 403 and b"api_token_file" in denied[1]
    assert Api(lambda: {}, lambda: b"", token=None, loopback=True)._denied({"headers": []}) is None


async def test_status_is_redacted(tmp_path, nursery):
    from bzzz.redact import register
    agent = await start_agent(nursery, tmp_path, "b")
    register("very-secret-node-value")
    agent.config.node_id = "very-secret-node-value"  # something secret slips into status
    async with httpx.AsyncClient(base_url=agent.api.bound[0]) as client:
        text = (await client.get("/api/v1/status")).text
    assert "very-secret-node-value" not in text and "[redacted]" in text


async def test_tasks_sharing_the_network_make_the_probe_need_a_token(tmp_path, nursery, workdir):
    """With bubblewrap on the host's network a task reaches the loopback API: loopback is
    then no proof of an operator, and the acting endpoint refuses without a token."""
    import shutil
    from bzzz.devhub import DevHubThread
    from .conftest import require
    require(shutil.which("bwrap") is not None, "bubblewrap is not installed")
    seed = {"users": [{"login": "bot", "token": "t-bot"}],
            "repos": [{"full_name": "bot/tasks", "push": []}]}
    (tmp_path / "token").write_text("t-bot\n")
    with DevHubThread(seed=seed) as hub:
        agent = await start_agent(nursery, tmp_path, "c", sandbox="bwrap", task_network="bridge",
                                  workspace_dir=workdir, github={
                                      "url": hub.url, "repos": ["bot/tasks"],
                                      "token_file": tmp_path / "token"})
        async with httpx.AsyncClient(base_url=agent.api.bound[0]) as client:
            r = await client.post("/api/v1/help/probe", json={"needs": [], "wait": 0.1})
        assert r.status_code == 403 and b"api_token_file" in r.content
        assert agent.sandbox.kind == "bwrap"
