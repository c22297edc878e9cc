"""The task gateway for container tasks: a side container holding the forwarder.

A bubblewrap task runs the forwarder (bzzz/gateway/forwarder.py) in its own sandbox before
its command, with the host's python3. A container task's image may have no Python at all
(``node:20``, ``golang``, busybox), so its forwarder runs beside it instead:

- the **side container** (image ``gateway_image``: any image with ``python3``; the agent's
  own image has one) has network ``none``, the task's route socket and a read-only copy of
  the forwarder bind-mounted, a read-only root, no capabilities, the task's user and small
  limits; it runs ``forwarder.py --serve`` and says so on its output once it listens;
- the **task's container** joins the side container's network namespace
  (``NetworkMode: container:<id>``): it sees one loopback with the forwarder on
  ``127.0.0.1:3128`` and nothing else: no interface to the engine's bridge, no route to
  the host, no DNS. The side container's processes are in another pid namespace, so the
  task can neither see nor signal them.

Both carry the node's label, so a killed agent's leftovers are reaped like task containers.
Measured here with podman: the side container is listening about 0.15 s after it is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from ..errors import ExecError
from ..gateway import forwarder, inside
from .container import Engine, EngineError

READY_WITHIN = 20.0  # seconds for the side container to listen (image start, python start)
SIDE_MEMORY = 128 << 20
SIDE_PIDS = 16
PROBE = "import asyncio, socket, sys; sys.exit(0)"  # what the forwarder needs


class SideError(ExecError):
    """The side container could not be started: the task gets no way out, so it is not run."""


def side_body(*, image: str, user: str, socket_source: str, forwarder_source: str,
              labels: dict[str, str], cpus: float) -> dict[str, Any]:
    """The side container: the forwarder serving the route's socket on its loopback."""
    return {
        "Image": image, "Entrypoint": ["python3"],
        "Cmd": ["-I", inside.FORWARDER, "--port", str(inside.PROXY_PORT),
                "--socket", inside.SOCKET, "--serve"],
        "User": user, "Labels": labels, "Env": [],
        "AttachStdout": True, "AttachStderr": True, "AttachStdin": False,
        "OpenStdin": False, "Tty": False,
        "HostConfig": {
            "Mounts": [{"Type": "bind", "Source": socket_source, "Target": inside.SOCKET,
                        "ReadOnly": False},
                       {"Type": "bind", "Source": forwarder_source,
                        "Target": inside.FORWARDER, "ReadOnly": True}],
            "NetworkMode": "none", "ReadonlyRootfs": True,
            "Memory": SIDE_MEMORY, "MemorySwap": SIDE_MEMORY, "PidsLimit": SIDE_PIDS,
            "NanoCpus": int(cpus * 1e9),
            "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
            "LogConfig": {"Type": "none"}, "AutoRemove": False, "Privileged": False,
        },
    }


async def start_side(engine: Engine, body: dict[str, Any], name: str) -> str:
    """Create and start the side container; its id once the forwarder listens. On any
    failure the container is removed and :class:`SideError` says why."""
    try:
        cid = await engine.create(body, name)
    except EngineError as exc:
        if exc.status == 404:
            raise SideError(f"the gateway image {body['Image']} is not available on this "
                            "node") from None
        raise SideError(f"the container engine refused the gateway's side container: "
                        f"{exc}") from None
    try:
        await _until_ready(engine, cid)
    except BaseException:
        with trio.CancelScope(shield=True), trio.move_on_after(READY_WITHIN):
            await remove_quietly(engine, cid)
        raise
    return cid


async def _until_ready(engine: Engine, cid: str) -> None:
    seen = b""
    try:
        with trio.move_on_after(READY_WITHIN):
            async with engine.attach(cid) as stream:
                await engine.start(cid)
                async for chunk in stream.chunks():
                    seen = (seen + chunk)[-4096:]
                    if forwarder.READY.encode() in seen:
                        return
    except EngineError as exc:
        raise SideError(f"the gateway's side container did not start: {exc}") from None
    last = seen.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
    raise SideError(f"the gateway's side container did not listen within {READY_WITHIN:g} s "
                    f"({last[0][:200]})")


async def remove_quietly(engine: Engine, cid: str) -> None:
    try:
        await engine.remove(cid)
    except EngineError:
        pass  # reaped at the next start (it carries the node's label)


async def probe_image(engine: Engine, image: str, user: str) -> str | None:
    """None when ``image`` can hold the forwarder (``python3`` with what it imports), else
    why not, in a few words."""
    return await probe_run(engine, image, user, ["python3", "-I", "-c", PROBE], "python3",
                           "gateway")


async def probe_run(engine: Engine, image: str, user: str, argv: list[str], what: str,
                    label: str, mounts: Sequence[dict[str, Any]] = ()) -> str | None:
    """None when ``argv`` exits 0 in a container of ``image`` (no network, read-only root,
    no capabilities, ``mounts`` added), else why not, in a few words naming ``what``."""
    try:
        if not await engine.image_exists(image):
            return f"the image {image} is not available on the container engine"
        cid = await engine.create({
            "Image": image, "Entrypoint": argv[:1], "Cmd": argv[1:],
            "User": user, "Labels": {"bzzz.probe": label},
            "HostConfig": {"NetworkMode": "none", "ReadonlyRootfs": True,
                           "CapDrop": ["ALL"], "LogConfig": {"Type": "none"},
                           "Mounts": list(mounts)}})
    except EngineError as exc:
        return f"the container engine refused a probe of {image}: {exc}"
    try:
        with trio.move_on_after(READY_WITHIN) as scope:
            await engine.start(cid)
            code = await engine.wait(cid)
        if scope.cancelled_caught:
            return f"{what} in {image} did not answer within {READY_WITHIN:g} s"
        return None if code == 0 else f"the image {image} cannot run {what} (exit {code})"
    except EngineError as exc:
        return f"the image {image} cannot run {what} ({exc})"
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(READY_WITHIN):
            await remove_quietly(engine, cid)

