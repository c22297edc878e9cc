"""Task gateway benchmarks: what the way out costs a task (bzzz/gateway/).

  added_latency_p50_ms   one plain HTTP GET on a new connection through the forwarder and the
                         gateway, minus the same GET straight to the origin (p50 of each, same
                         run). Target 1 ms.
  connect_first_byte_added_ms   CONNECT tunnel: from connecting to the first echoed byte,
                         through the forwarder and the gateway minus direct (p50). Target 5 ms.
  stream_ratio           a model's streamed answer (server-sent events, one token each, at
                         1,000 tokens/s: faster than local models stream) through the
                         gateway's model route (key added, tokens counted) / straight from
                         the server: tokens per second, best of 3. Target 0.95.
  stream_max_ratio       the same unpaced (the server writes as fast as it can): how much
                         headroom the route has. No target.

Each part is a process of its own, as in a node: the origin (a threaded server), the gateway
(on trio, as in the agent), the real forwarder (as in a sandbox, here on the host's loopback
at a free port instead of a sandbox's), and the client (blocking sockets, this process).
Run as `python bench/gateway.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.gateway import forwarder  # noqa: E402

PACE = 0.001  # seconds between a paced stream's tokens
EVENT = b"data: {\"choices\":[{\"delta\":{\"content\":\"tok\"}}]}\n\n"


def origin(events: int) -> tuple[socket.socket, int]:
    """GET /: a small answer; GET /stream: `events` events; ECHO: echo. New thread each."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)

    def handle(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            line = buf.split(b"\r\n", 1)[0]
            if line == b"ECHO":
                conn.sendall(buf.split(b"\r\n\r\n", 1)[1])
                while chunk := conn.recv(4096):
                    conn.sendall(chunk)
            elif b"/chat/completions" in line:
                head, _, rest = buf.partition(b"\r\n\r\n")
                size = int(next(h.split(b":")[1] for h in head.split(b"\r\n")
                                if h.lower().startswith(b"content-length")))
                while len(rest) < size:
                    rest += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Connection: close\r\n\r\n")
                gap = PACE if b"paced" in line else 0.0
                count = re.search(rb"n=(\d+)", line)
                for _ in range(int(count.group(1)) if count else events):
                    conn.sendall(EVENT)
                    if gap:
                        time.sleep(gap)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close"
                             b"\r\n\r\nok")

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def get(port: int, target: str) -> bytes:
    with connect(port) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def first_byte(port: int, head: bytes) -> float:
    t0 = time.perf_counter()
    with connect(port) as s:
        s.sendall(head)
        if head.startswith(b"CONNECT"):
            got = b""
            while b"\r\n\r\n" not in got:
                got += s.recv(4096)
        s.sendall(b"ECHO\r\n\r\nx")
        s.recv(1)
        return time.perf_counter() - t0


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def spawn(*args: str) -> tuple[subprocess.Popen[str], str]:
    """A bench/_gateway_peer.py process and the line it prints when it is ready."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_gateway_peer.py"), *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds = 60 if args.quick else 400
    events = 5_000 if args.quick else 50_000
    tmp = Path(tempfile.mkdtemp(prefix="bzzz-bench-gateway-"))
    orig, line = spawn("origin", str(events))
    oport = int(line)
    gw, line = spawn("gateway", str(tmp / "gw"), f"127.0.0.1:{oport}")
    sock, capability = line.split()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        fport = s.getsockname()[1]
    fwd = subprocess.Popen([sys.executable, forwarder.__file__, "--port", str(fport),
                            "--socket", sock, "--", "sleep", "3600"])
    try:
        deadline = time.monotonic() + 10
        while True:  # the forwarder is up when its port answers
            try:
                connect(fport).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        measure(rounds, events, oport, fport, capability, args.quick)
    finally:
        for proc in (fwd, gw, orig):
            proc.terminate()
            proc.wait(10)


def chat(port: int, path: str, capability: str) -> bytes:
    body = b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "go"}]}'
    with connect(port) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {capability}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                  .encode() + body)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def measure(rounds: int, events: int, oport: int, fport: int, capability: str,
            quick: bool) -> None:
    url = f"http://127.0.0.1:{oport}/"
    direct, via = [], []
    for _ in range(rounds):  # interleaved: both see the same machine
        t0 = time.perf_counter()
        assert get(oport, "/").endswith(b"ok")
        direct.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert get(fport, url).endswith(b"ok")
        via.append(time.perf_counter() - t0)
    added = p50_ms(via) - p50_ms(direct)
    cdirect = [first_byte(oport, b"") for _ in range(rounds)]
    cvia = [first_byte(fport, f"CONNECT 127.0.0.1:{oport} HTTP/1.1\r\n\r\n".encode())
            for _ in range(rounds)]
    cadded = p50_ms(cvia) - p50_ms(cdirect)
    ratios = {}
    paced = 300 if quick else 2000
    for label, query, n_events in (("paced", f"?paced&n={paced}", paced),
                                   ("max", "", events)):
        rates = {}
        for name, port, target in (("direct", oport, "/v1/chat/completions"),
                                   ("via", fport, "/llm/bench/v1/chat/completions")):
            best = 0.0
            for _ in range(3):
                t0 = time.perf_counter()
                body = chat(port, target + query, capability)
                n = body.count(b"data: ")
                best = max(best, n / (time.perf_counter() - t0))
            assert n == n_events, (name, n)
            rates[name] = best
        ratios[label] = rates["via"] / rates["direct"]
    ratio = ratios["paced"]
    print(json.dumps({"bench": "gateway", "name": "stream_max_ratio",
                      "value": round(ratios["max"], 3), "target": None, "ok": True,
                      "events": events, "quick": quick}))
    for name, value, target, ok in (
            ("added_latency_p50_ms", added, 1.0, added <= 1.0),
            ("connect_first_byte_added_ms", cadded, 5.0, cadded <= 5.0),
            ("stream_ratio", ratio, 0.95, ratio >= 0.95)):
        print(json.dumps({"bench": "gateway", "name": name, "value": round(value, 3),
                          "target": target, "ok": ok, "rounds": rounds,
                          "direct_p50_ms": round(p50_ms(direct), 3),
                          "events": events, "quick": quick}))


if __name__ == "__main__":
    main()
