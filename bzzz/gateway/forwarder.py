"""The gateway's forwarder inside a sandbox: ``127.0.0.1:PORT`` there, the task's gateway
socket behind it, then the task's command.

A task's network namespace holds only its own loopback; its one way out is the Unix socket of
its route (bzzz/gateway/proxy.py), bind-mounted into the sandbox. Most tools speak to an HTTP
proxy over TCP only, so this forwarder listens on the sandbox's loopback and carries each
connection to that socket, byte for byte (it never reads what passes). It then runs the
task's command and exits with its status. The task may stop it: it then only loses its own
way out.

Standard library only, and no import from bzzz: the sandbox runs it from a read-only copy
with the system's python3::

    python3 forwarder.py --port 3128 --socket /run/bzzz/gateway.sock -- CMD ARGS...
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import threading

CHUNK = 64 * 1024


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(CHUNK):
            dst.sendall(chunk)
        dst.shutdown(socket.SHUT_WR)  # pass the half-close on: the answer still comes back
    except OSError:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue  # already closed: nothing left to stop


def _carry(conn: socket.socket, path: str) -> None:
    with conn:
        try:
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(path)
        except OSError:
            return  # the gateway is gone (the task is ending): the client sees a close
        with up:
            back = threading.Thread(target=_pump, args=(up, conn), daemon=True)
            back.start()
            _pump(conn, up)
            back.join()


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_carry, args=(conn, path), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3128)
    parser.add_argument("--socket", required=True)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, args.socket), daemon=True).start()
    proc = subprocess.Popen(args.command)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: proc.send_signal(s))
    code = proc.wait()
    listener.close()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
