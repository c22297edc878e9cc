"""Task gateway benchmarks: what the way out costs a task (bzzz/gateway/).

  added_latency_p50_ms   one plain HTTP GET on a new connection through the forwarder and the
                         gateway, minus the same GET straight to the origin (p50 of each, same
                         run). Target 1 ms.
  connect_first_byte_added_ms   CONNECT tunnel: from connecting to the first echoed byte,
                         through the forwarder and the gateway minus direct (p50). Target 5 ms.
  stream_ratio           a streamed answer of many small events (as a model streams tokens):
                         events per second through the gateway / direct. Target 0.95.

The origin is a threaded server in this process; the gateway runs on trio in a thread of its
own; the forwarder is the real one, a separate process as in a sandbox (here on the host's
loopback at a free port instead of a sandbox's); the client uses blocking sockets.
Run as `python bench/gateway.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.gateway import forwarder  # noqa: E402
from bzzz.gateway.allow import Allowlist  # noqa: E402
from bzzz.gateway.proxy import Gateway  # noqa: E402

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
            elif b"/stream" in line:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Connection: close\r\n\r\n")
                for _ in range(events):
                    conn.sendall(EVENT)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds = 60 if args.quick else 400
    events = 5_000 if args.quick else 50_000
    srv, oport = origin(events)
    tmp = Path(tempfile.mkdtemp(prefix="bzzz-bench-gateway-"))
    ready = threading.Event()
    stop = trio.Event()
    state: dict = {}

    async def run_gateway() -> None:
        nonlocal stop
        stop = trio.Event()
        gw = Gateway(tmp / "gw")
        async with gw.route("bench", Allowlist.build([f"127.0.0.1:{oport}"])) as route:
            state["route"], state["token"] = route, trio.lowlevel.current_trio_token()
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=trio.run, args=(run_gateway,), daemon=True)
    thread.start()
    ready.wait(10)
    route = state["route"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        fport = s.getsockname()[1]
    fwd = subprocess.Popen([sys.executable, forwarder.__file__, "--port", str(fport),
                            "--socket", str(route.socket_path), "--", "sleep", "3600"])
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
        rates = {}
        for name, port, target in (("direct", oport, "/stream"),
                                   ("via", fport, f"http://127.0.0.1:{oport}/stream")):
            best = 0.0
            for _ in range(3):
                t0 = time.perf_counter()
                body = get(port, target)
                n = body.count(b"data: ")
                best = max(best, n / (time.perf_counter() - t0))
            assert n == events, (name, n)
            rates[name] = best
        ratio = rates["via"] / rates["direct"]
        for name, value, target, ok in (
                ("added_latency_p50_ms", added, 1.0, added <= 1.0),
                ("connect_first_byte_added_ms", cadded, 5.0, cadded <= 5.0),
                ("stream_ratio", ratio, 0.95, ratio >= 0.95)):
            print(json.dumps({"bench": "gateway", "name": name, "value": round(value, 3),
                              "target": target, "ok": ok, "rounds": rounds,
                              "direct_p50_ms": round(p50_ms(direct), 3),
                              "events": events, "quick": args.quick}))
    finally:
        fwd.terminate()
        fwd.wait(10)
        trio.from_thread.run_sync(stop.set, trio_token=state["token"])
        thread.join(10)
        srv.close()


if __name__ == "__main__":
    main()
