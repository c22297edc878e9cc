"""The agent's webhook intake: signed deliveries from devhub wake the claim service."""

import httpx
import trio

from bzzz.asgi import serve_app
from bzzz.claim.github import GitHubClient
from bzzz.claim.service import ClaimService, ClaimSettings
from bzzz.claim.webhook import WebhookIntake
from bzzz.decisions import MemoryDecisionLog
from bzzz.devhub import DevHubThread
from bzzz.devhub.webhooks import sign

from .helpers import free_port

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}
SECRET = "hook-secret"


def test_checks_signature_dedups_and_counts():
    events = []
    intake = WebhookIntake(SECRET, lambda e, r, p: events.append((e, r)))
    body = b'{"action": "opened", "repository": {"full_name": "owner/tasks"}}'
    good = {"x-hub-signature-256": sign(SECRET, body), "x-github-delivery": "d-1",
            "x-github-event": "issues"}
    assert intake.handle(good, body) == (202, "queued")
    assert intake.handle(good, body)[0] == 200  # redelivery: same id, ignored
    assert intake.handle({**good, "x-hub-signature-256": sign("wrong", body),
                          "x-github-delivery": "d-2"}, body)[0] == 401
    assert intake.handle({**good, "x-github-delivery": "d-3"}, body + b" ")[0] == 401
    push = {**good, "x-github-delivery": "d-4", "x-github-event": "push"}
    assert intake.handle(push, body)[0] == 202
    junk = b"not json"
    assert intake.handle({"x-hub-signature-256": sign(SECRET, junk), "x-github-delivery": "d-5",
                          "x-github-event": "issues"}, junk)[0] == 400
    assert events == [("issues", "owner/tasks")]
    assert intake.counts == {"accepted": 1, "duplicate": 1, "bad_signature": 2,
                             "ignored_event": 1, "malformed": 1}


async def test_a_webhook_gets_a_task_claimed_long_before_the_next_poll(tmp_path):
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"})
        log = MemoryDecisionLog()
        async with GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
            svc = ClaimService(gh, ClaimSettings(["owner/tasks"], "n1", "12D3KooWn1", "bot",
                                                 poll_interval=60, workroot=tmp_path),
                               log, capabilities=lambda: ["shell"])
            await nursery.start(svc.run)
            intake = WebhookIntake(SECRET, svc.on_webhook)
            port = free_port()
            await nursery.start(lambda task_status: serve_app(intake, "127.0.0.1", port,
                                                              task_status=task_status))
            r = owner.post("/repos/owner/tasks/hooks", json={
                "config": {"url": f"http://127.0.0.1:{port}/webhook", "secret": SECRET},
                "events": ["issues", "issue_comment"]})
            assert r.status_code == 201
            with trio.fail_after(5):  # the service's first poll has happened (empty repo)
                while svc.feed.repos["owner/tasks"].polls < 1:
                    await trio.sleep(0.01)
            start = trio.current_time()
            owner.post("/repos/owner/tasks/issues", json={
                "title": "hooked", "body": "```bzzz\necho hi\n```", "labels": ["bzzz"]})
            with trio.fail_after(5):
                while not any(e["type"] == "claimed" for e in log.entries):
                    await trio.sleep(0.01)
            assert trio.current_time() - start < 1.0  # the poll interval is 60 s
            assert intake.counts["accepted"] >= 1
            nursery.cancel_scope.cancel()
