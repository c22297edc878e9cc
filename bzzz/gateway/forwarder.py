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

A container task runs it the other way round (bzzz/exec/sandbox.py): in a side container of
its own, whose network namespace the task's container joins, with no command (``--serve``):
it says ``READY`` on standard output once it listens, and serves until it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from typing import Any

CHUNK = 64 * 1024
READY = "bzzz-forwarder: listening"


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while chunk := await src.read(CHUNK):
            dst.write(chunk)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()  # pass the half-close on: the answer still comes back
    except OSError:
        dst.close()  # either side broke: the other is closed too


_LIVE: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references to tasks


def _keep(coro: "asyncio.Future[None] | Coroutine[Any, Any, None]") -> asyncio.Task[None]:
    task = asyncio.ensure_future(coro)
    _LIVE.add(task)
    task.add_done_callback(_LIVE.discard)
    return task


async def _carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 path: str) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(path)
    except OSError:
        writer.close()  # the gateway is gone (the task is ending): the client sees a close
        return
    await asyncio.gather(_keep(_pump(reader, up_writer)), _keep(_pump(up_reader, writer)))
    for w in (writer, up_writer):
        w.close()


async def _listen(port: int, path: str) -> asyncio.Server:
    return await asyncio.start_server(lambda r, w: _keep(_carry(r, w, path)) and None,
                                      "127.0.0.1", port, reuse_address=True, limit=CHUNK)


async def _serve(port: int, path: str) -> int:
    """No command: serve until SIGTERM (a container task's side container)."""
    server = await _listen(port, path)
    print(READY, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    return 0


async def _main(port: int, path: str, command: list[str]) -> int:
    server = await _listen(port, path)
    proc = await asyncio.create_subprocess_exec(*command)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, proc.send_signal, sig)
    code = await proc.wait()
    # the task is over: connections still open go with this process (no clean-up to wait
    # for, and nothing printed into the task's output)
    server.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if code >= 0 else 128 - code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3128)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--serve", action="store_true", help="no command: serve until stopped")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args(argv)
    if args.serve:
        return asyncio.run(_serve(args.port, args.socket))
    if not args.command:
        parser.error("a command to run, or --serve")
    return asyncio.run(_main(args.port, args.socket, args.command))  # exits from _main


if __name__ == "__main__":
    sys.exit(main())
