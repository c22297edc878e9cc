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
