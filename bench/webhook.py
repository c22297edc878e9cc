"""Webhook intake benchmarks: what a request costs the agent before its signature is checked.

  unsigned_24mib_post_cpu      server CPU time (this process's, time.process_time) spent on
                               one POST of 24 MiB without X-Hub-Signature-256: refused from
                               its headers, the body never read. Target 10 ms.
  badly_signed_24mib_post_cpu  the same with a well-formed but wrong signature, whose body
                               has to be read (into one buffer of the declared size) before
                               the HMAC can be checked: for comparison, no target.

The intake (bzzz.claim.webhook) is served by hypercorn in this process; the client is a
separate process (so its CPU time is not counted) that connects, waits for the word, sends
the headers and as much of the body as the server takes, and reports the status it got.
Run as `python bench/webhook.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.asgi import serve_app  # noqa: E402
from bzzz.claim.webhook import WebhookIntake  # noqa: E402

MiB = 1024 * 1024
SIZE = 24 * MiB
TARGET_MS = 10.0

# The client: headers, then the body while the socket takes it, until the answer comes.
CLIENT = r"""
import select, socket, sys
port, size, signature = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
print("ready", flush=True)
sys.stdin.readline()  # the word
head = ("POST /webhook HTTP/1.1\r\nHost: bench\r\nX-GitHub-Event: issues\r\n"
        "X-GitHub-Delivery: bench\r\nContent-Length: %d\r\n" % size)
if signature != "-":
    head += "X-Hub-Signature-256: %s\r\n" % signature
s.sendall((head + "\r\n").encode())
s.setblocking(False)
chunk, sent, answer = b"x" * (1 << 20), 0, b""
try:
    while b"\r\n" not in answer:
        readable, writable, _ = select.select([s], [s] if sent < size else [], [], 30)
        if not readable and not writable:
            break
        if readable:
            data = s.recv(4096)
            if not data:
                break
            answer += data
        elif writable:
            sent += s.send(chunk[:size - sent])
except OSError:
    pass
status = answer.split(b" ")[1].decode() if b"\r\n" in answer else "0"
print(status, sent, flush=True)
"""


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "webhook", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def one_post(port: int, signature: str) -> tuple[float, int, int]:
    """(server CPU seconds, HTTP status, body bytes the client got to send)."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", CLIENT, str(port), str(SIZE), signature], stdin=-1, stdout=-1)
    try:
        async def line() -> bytes:
            out = b""
            while not out.endswith(b"\n"):
                data = await proc.stdout.receive_some(256)
                if not data:
                    break
                out += data
            return out
        await line()  # connected
        await trio.sleep(0.05)  # for hypercorn to accept it: not on the clock
        start = time.process_time()
        await proc.stdin.send_all(b"go\n")
        out = await line()
        cpu = time.process_time() - start
    finally:
        with trio.move_on_after(10):
            await proc.wait()
        proc.kill()
    status, sent = out.split()
    return cpu, int(status), int(sent)


async def main(quick: bool) -> None:
    runs = 3 if quick else 20
    intake = WebhookIntake("bench-secret", lambda e, r, p: None)
    port = free_port()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_app(intake, "127.0.0.1", port,
                                                          task_status=task_status))
        for metric, signature, target in (
                ("unsigned_24mib_post_cpu", "-", TARGET_MS),
                ("badly_signed_24mib_post_cpu", "sha256=" + "0" * 64, None)):
            results = [await one_post(port, signature) for _ in range(runs)]
            cpu_ms = [r[0] * 1000 for r in results]
            value = round(statistics.median(cpu_ms), 2)
            emit(metric, value, "ms", target, value <= target if target else None,
                 runs=runs, max_ms=round(max(cpu_ms), 2), body_bytes=SIZE,
                 statuses=sorted({r[1] for r in results}),
                 client_sent_max=max(r[2] for r in results))
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 requests of each kind (~2 s)")
    args = parser.parse_args()
    trio.run(main, args.quick)
