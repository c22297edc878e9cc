"""The agent's webhook intake: signed deliveries from devhub wake the claim service."""

import httpx
import trio

from bzzz.asgi import serve_app
from bzzz.github.client import GitHubClient
from bzzz.claim.service import ClaimService, ClaimSettings
from bzzz.claim.webhook import WebhookIntake
from bzzz.decisions import MemoryDecisionLog
from bzzz.devhub import DevHubThread
from bzzz.github.webhooks import sign
from bzzz.testing.wait import wait_until

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
        log = MemoryDecisionLog()
        async with httpx.AsyncClient(base_url=hub.url,
                                     headers={"Authorization": "token t-owner"}) as owner, \
                GitHubClient(hub.url, "t-bot") as gh, trio.open_nursery() as nursery:
            svc = ClaimService(gh, ClaimSettings(["owner/tasks"], "n1", "12D3KooWn1", "bot",
                                                 poll_interval=60, workroot=tmp_path),
                               log, capabilities=lambda: ["shell"])
            await nursery.start(svc.run)
            intake = WebhookIntake(SECRET, svc.on_webhook)
            port = free_port()
            await nursery.start(lambda task_status: serve_app(intake, "127.0.0.1", port,
                                                              task_status=task_status))
            r = await owner.post("/repos/owner/tasks/hooks", json={
                "config": {"url": f"http://127.0.0.1:{port}/webhook", "secret": SECRET},
                "events": ["issues", "issue_comment"]})
            assert r.status_code == 201
            await wait_until(lambda: svc.feed.repos["owner/tasks"].polls >= 1, 5,
                             "the service's first poll (empty repo)", interval=0.01)
            start = trio.current_time()
            await owner.post("/repos/owner/tasks/issues", json={
                "title": "hooked", "body": "```bzzz\necho hi\n```", "labels": ["bzzz"]})
            await wait_until(lambda: any(e["type"] == "claimed" for e in log.entries), 5,
                             "the task claimed", interval=0.01)
            assert trio.current_time() - start < 1.0  # the poll interval is 60 s
            assert intake.counts["accepted"] >= 1
            nursery.cancel_scope.cancel()


MiB = 1024 * 1024


async def _raw_post(port: int, headers: dict[str, str], body: bytes = b"",
                    chunked: bool = False) -> tuple[int, int]:
    """POST over a plain socket: headers first, then the answer is awaited while the body
    (if any) is sent. Returns (status, body bytes the server let us send)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    await stream.send_all(f"POST /webhook HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    sent = 0
    answer = b""

    async def send_body():
        nonlocal sent
        try:
            for i in range(0, len(body), MiB):
                piece = body[i:i + MiB]
                await stream.send_all(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked:
                await stream.send_all(b"0\r\n\r\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the server answered and closed: the rest is not wanted

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_body)
        with trio.fail_after(10):
            while b"\r\n" not in answer:
                try:
                    data = await stream.receive_some(4096)
                except trio.BrokenResourceError:
                    break
                if not data:
                    break
                answer += data
        nursery.cancel_scope.cancel()
    await stream.aclose()
    return int(answer.split(b" ")[1]), sent


async def test_an_unsigned_or_oversized_post_is_refused_before_its_body_is_read():
    received = []  # body bytes that reached the intake

    intake = WebhookIntake(SECRET, lambda e, r, p: None, max_body=4 * MiB)

    async def counting(scope, receive, send):
        async def counted():
            message = await receive()
            received.append(len(message.get("body", b"")))
            return message
        await intake(scope, counted, send)

    port = free_port()
    event = {"x-github-event": "issues", "x-github-delivery": "d-1"}
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_app(counting, "127.0.0.1", port,
                                                          task_status=task_status))
        # no signature: 401 from the headers alone, even though the body never comes
        status, _ = await _raw_post(port, {**event, "content-length": str(24 * MiB)})
        assert status == 401
        # the same with 24 MiB actually sent: refused, and none of it read by the intake
        status, _ = await _raw_post(port, {**event, "content-length": str(24 * MiB)},
                                    b"x" * 24 * MiB)
        assert status == 401 and sum(received) == 0
        # a well-formed but wrong signature and a declared length above the limit: 413
        wrong = {**event, "x-hub-signature-256": "sha256=" + "0" * 64}
        status, _ = await _raw_post(port, {**wrong, "content-length": str(5 * MiB)})
        assert status == 413 and sum(received) == 0
        # chunked, no length declared: read only up to the limit
        status, _ = await _raw_post(port, {**wrong, "transfer-encoding": "chunked"},
                                    b"x" * 6 * MiB, chunked=True)
        assert status == 413 and 4 * MiB <= sum(received) <= 5 * MiB
        # a signed delivery still gets through
        body = b'{"repository": {"full_name": "owner/tasks"}}'
        status, _ = await _raw_post(port, {**event, "x-github-delivery": "d-2",
                                           "x-hub-signature-256": sign(SECRET, body),
                                           "content-length": str(len(body))}, body)
        assert status == 202 and intake.counts["accepted"] == 1
        assert intake.counts["bad_signature"] == 2 and intake.counts["oversized"] == 2
        nursery.cancel_scope.cancel()
