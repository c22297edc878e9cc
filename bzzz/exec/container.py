"""A small Docker Engine API client: just what the container sandbox needs.

httpx over the engine's unix socket (``httpx.AsyncHTTPTransport(uds=...)``, which runs on
trio) or a plain ``tcp://host:port``. API version 1.41: Docker 20.10 and later, and podman's
Docker-compatible service (``podman system service``, 4.x) both speak it.

Output comes through ``attach`` (an HTTP upgrade to a raw stream, opened before ``start`` so
nothing is missed) rather than ``logs``: every byte is seen and counted exactly once, and
with the ``none`` log driver nothing is written to the engine's disk however much a task
prints. The stream is Docker's multiplexed format (8-byte frame headers: stream id, size)
because containers are created without a TTY.
"""

from __future__ import annotations

from ..errors import ExecError
import json
import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlparse

import httpx

API_VERSION = "1.41"
DEFAULT_HOST = "unix:///var/run/docker.sock"


class EngineError(ExecError):
    """The engine answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})" if status else message)
        self.status = status
        self.message = message


def resolve_host(docker_host: str | None) -> str:
    """The engine address to use: the one given, else ``DOCKER_HOST``, else the default
    socket."""
    return docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def _transport(host: str) -> tuple[httpx.AsyncHTTPTransport, str]:
    url = urlparse(host)
    if url.scheme == "unix":
        return httpx.AsyncHTTPTransport(uds=url.path), "http://engine"
    if url.scheme in ("tcp", "http"):
        return httpx.AsyncHTTPTransport(), f"http://{url.netloc}"
    raise EngineError(0, f"unsupported engine address {host!r} (use unix:///path or tcp://host:port)")


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise EngineError(resp.status_code, f"not JSON: {resp.text[:100]!r}") from None


def _object(resp: httpx.Response) -> dict[str, Any]:
    """An answer's JSON object; EngineError when the engine sent something else."""
    body = _json(resp)
    if not isinstance(body, dict):
        raise EngineError(resp.status_code, f"not a JSON object: {resp.text[:100]!r}")
    return body


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:300] or resp.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("cause") or body)[:300]
    return str(body)[:300]


class Engine:
    """One connection pool to one engine. Use as ``async with Engine(host) as engine``."""

    def __init__(self, host: str, *, timeout: float = 30.0) -> None:
        self.host = host
        transport, base = _transport(host)
        self._client = httpx.AsyncClient(transport=transport, base_url=f"{base}/v{API_VERSION}",
                                         timeout=timeout)

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 204),
                    **kwargs: Any) -> httpx.Response:
        """One request (``kwargs``: httpx's, ``timeout`` included: the client's when not
        given); EngineError when it fails or its status is not ``ok``."""
        try:
            resp = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise EngineError(0, f"container engine at {self.host} unreachable: {exc}") from None
        if resp.status_code not in ok:
            raise EngineError(resp.status_code, _message(resp))
        return resp

    # -- the engine ------------------------------------------------------------------------

    async def ping(self, timeout: float = 3.0) -> bool:  # noqa: ASYNC109 - httpx's, per request
        try:
            resp = await self._client.get("/_ping", timeout=timeout)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def version(self) -> dict[str, Any]:
        return _object(await self._call("GET", "/version"))

    async def is_podman(self) -> bool:
        """podman's compatible service (its tmpfs mounts copy up what they cover unless
        told ``notmpcopyup``, an option Docker rejects)."""
        info = await self.version()
        return any("podman" in str(c.get("Name", "")).lower()
                   for c in info.get("Components") or [])

    async def image_exists(self, name: str) -> bool:
        try:
            await self._call("GET", f"/images/{quote(name, safe='/:@')}/json")
        except EngineError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- containers ------------------------------------------------------------------------

    async def create(self, body: dict[str, Any], name: str | None = None) -> str:
        params = {"name": name} if name else {}
        resp = await self._call("POST", "/containers/create", params=params, json=body)
        cid = _object(resp).get("Id")
        if not isinstance(cid, str):
            raise EngineError(resp.status_code, f"no container id in {resp.text[:100]!r}")
        return cid

    async def start(self, cid: str) -> None:
        await self._call("POST", f"/containers/{cid}/start", ok=(204, 304))

    async def wait(self, cid: str) -> int:
        """Block until the container stops; its exit status."""
        resp = await self._call("POST", f"/containers/{cid}/wait", timeout=None)
        return int(_object(resp).get("StatusCode", -1))

    async def inspect(self, cid: str) -> dict[str, Any]:
        return _object(await self._call("GET", f"/containers/{cid}/json"))

    async def kill(self, cid: str, signal: str = "KILL") -> None:
        # 409: not running any more; 404: already gone
        await self._call("POST", f"/containers/{cid}/kill", params={"signal": signal},
                         ok=(204, 404, 409))

    async def stop(self, cid: str, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (the engine does the waiting)."""
        await self._call("POST", f"/containers/{cid}/stop", params={"t": max(0, int(grace))},
                         ok=(204, 304, 404), timeout=grace + 30)

    async def remove(self, cid: str) -> bool:
        """Force-remove (kills it if running); False when it was already gone."""
        resp = await self._call("DELETE", f"/containers/{cid}", params={"force": 1, "v": 1},
                                ok=(200, 204, 404))
        return resp.status_code != 404

    async def list(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        filters = json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})
        resp = await self._call("GET", "/containers/json", params={"all": 1, "filters": filters})
        found = _json(resp)
        if not isinstance(found, list):
            raise EngineError(resp.status_code, f"not a JSON list: {resp.text[:100]!r}")
        return [c for c in found if isinstance(c, dict)]

    @asynccontextmanager
    async def attach(self, cid: str) -> AsyncIterator["AttachStream"]:
        """The container's stdout and stderr from the start (attach before ``start``)."""
        request = self._client.build_request(
            "POST", f"/containers/{cid}/attach",
            params={"stream": 1, "stdout": 1, "stderr": 1, "logs": 0},
            headers={"Connection": "Upgrade", "Upgrade": "tcp"}, timeout=None)
        try:
            resp = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise EngineError(0, f"container engine at {self.host} unreachable: {exc}") from None
        try:
            if resp.status_code not in (101, 200):
                await resp.aread()
                raise EngineError(resp.status_code, _message(resp))
            yield AttachStream(resp)
        finally:
            await resp.aclose()


class AttachStream:
    """Payload chunks of a multiplexed attach stream (frame headers removed)."""

    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp
        self._stream = resp.extensions.get("network_stream") if resp.status_code == 101 else None

    async def _raw(self) -> AsyncIterator[bytes]:
        if self._stream is not None:
            while True:
                chunk = await self._stream.read(65536)
                if not chunk:
                    return
                yield chunk
        else:
            async for chunk in self._resp.aiter_raw():
                yield chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        buf = bytearray()
        need = 0  # payload bytes still owed by the current frame
        async for chunk in self._raw():
            buf += chunk
            while buf:
                if need:
                    take = bytes(buf[:need])
                    del buf[:len(take)]
                    need -= len(take)
                    yield take
                    continue
                if len(buf) < 8:
                    break
                _stream_id, size = struct.unpack(">BxxxL", bytes(buf[:8]))
                del buf[:8]
                need = size
