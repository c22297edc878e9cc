"""devhub's webhooks: deliveries for issues and issue_comment, signed like GitHub's."""

import http.server
import json
import threading

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.github.webhooks import sign, verify
from bzzz.testing.inprocess import InProcessDevHub
from bzzz.testing.wait import wait_for

from .test_devhub import SEED, gh


def test_signature_matches_githubs_test_vector():
    body = b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign("It's a Secret to Everybody", body) == expected
    assert verify("It's a Secret to Everybody", body, expected)
    assert not verify("It's a Secret to Everybody", body + b" ", expected)
    assert not verify("another secret", body, expected)
    assert not verify("It's a Secret to Everybody", body, None)
    assert not verify("It's a Secret to Everybody", body, expected.replace("sha256=", "sha1="))


@pytest.fixture
def receiver():
    got: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()


def test_deliveries_are_signed_typed_and_redeliverable(receiver):
    url, got = receiver
    secret = "s3cret-hook"
    with DevHubThread(seed=SEED) as d:
        repo = gh(d).get_repo("alice/widgets")
        hook = repo.create_hook("web", {"url": url, "content_type": "json", "secret": secret},
                                events=["issues", "issue_comment"], active=True)
        assert hook.config["secret"] == "********"
        issue = repo.create_issue(title="hooked", labels=["bzzz"])
        issue.add_to_assignees("bob")
        issue.create_comment("on it")
        issue.edit(state="closed")
        wanted = [("issues", "opened"), ("issues", "labeled"), ("issues", "assigned"),
                  ("issue_comment", "created"), ("issues", "closed")]
        wait_for(lambda: len(got) >= len(wanted), 10, what="webhook deliveries")
        seen = []
        for g in got:
            h, payload = g["headers"], json.loads(g["body"])
            assert verify(secret, g["body"], h["x-hub-signature-256"])
            assert h["x-github-hook-id"] == str(hook.id) and h["x-github-delivery"]
            assert payload["issue"]["number"] == issue.number
            assert payload["repository"]["full_name"] == "alice/widgets"
            assert payload["sender"]["login"] == "alice"
            seen.append((h["x-github-event"], payload["action"]))
        assert sorted(seen) == sorted(wanted)
        comment_payload = next(json.loads(g["body"]) for g in got
                               if g["headers"]["x-github-event"] == "issue_comment")
        assert comment_payload["comment"]["body"] == "on it"
        guids = [g["headers"]["x-github-delivery"] for g in got]
        assert len(set(guids)) == len(guids)

        with httpx.Client(base_url=d.url, headers={"Authorization": "token t-alice"}) as c:
            deliveries = c.get(f"/repos/alice/widgets/hooks/{hook.id}/deliveries").json()
            assert len(deliveries) == len(wanted) and all(x["status_code"] == 204
                                                          for x in deliveries)
            first = deliveries[-1]
            r = c.post(f"/repos/alice/widgets/hooks/{hook.id}/deliveries/{first['id']}/attempts")
            assert r.status_code == 202
        wait_for(lambda: len(got) == len(wanted) + 1, 10, what="redelivery")
        assert got[-1]["headers"]["x-github-delivery"] == first["guid"]  # same id: de-duplicate
        assert got[-1]["body"] == next(g["body"] for g in got
                                       if g["headers"]["x-github-delivery"] == first["guid"])


def test_hook_needs_push_and_a_url():  # only REST: devhub in process
    with InProcessDevHub(seed=SEED) as d:
        with d.client(headers={"Authorization": "token t-carol"}) as c:
            r = c.post("/repos/alice/widgets/hooks", json={"config": {"url": "http://127.0.0.1:1"}})
            assert r.status_code == 403
        with d.client(headers={"Authorization": "token t-alice"}) as c:
            assert c.post("/repos/alice/widgets/hooks", json={"config": {}}).status_code == 422
