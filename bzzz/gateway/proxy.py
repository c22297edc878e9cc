"""The node's task gateway: an HTTP forward proxy, one Unix socket per running task.

A task's only way out (docs/gateway.md). Each task gets a socket of its own
(``Gateway.route``); the socket is the task's identity, so what comes in on it is checked
against that task's allowlist and counted on that task's account, and the socket is gone when
the task ends. Inside the sandbox a forwarder (bzzz/gateway/forwarder.py) offers it as
``http://127.0.0.1:3128`` for the tools that speak to an HTTP proxy.

Two request forms, as every HTTP client sends them to a proxy:

- ``CONNECT host:port``: a tunnel (TLS passes through; the gateway never decrypts);
- an absolute URL (``GET http://host/path``): forwarded once with ``Connection: close``.

Anything else, a host the allowlist does not name, or a name that resolves only to addresses
the gateway will not dial (bzzz/gateway/policy.py) gets a ``403`` whose body says why, and is
counted on the task's account and per host for the node's metrics.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trio

from ..errors import closing_quietly
from . import forwarder, inside
from .budget import Budget, Spend
from .allow import Allowlist, Rule, normalize_host, valid_host
from .models import ModelEndpoint, forward, model_env
from .policy import Egress, GatewayRefusal, HostUse, ModelUse, dialable

__all__ = ["Gateway", "Route"]

log = logging.getLogger("bzzz.gateway")

HEAD_LIMIT = 16 * 1024  # bytes of a request's head
HEAD_TIMEOUT = 10.0  # seconds for a client to send its request's head
CONNECT_TIMEOUT = 10.0  # seconds to reach an allowed host
CHUNK = 64 * 1024
MAX_CONNECTIONS = 64  # a task's connections open at once (each holds agent descriptors)
HOSTS_COUNTED = 200  # distinct refused hosts the node's metrics name
MODEL_TIMEOUT = 600.0  # seconds a model may think before its answer's next bytes
HOP_HEADERS = {b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"}


@dataclass
class Route:
    """One task's way out: its socket, its allowlist, its account, and the capability its
    model clients present (bzzz/gateway/models.py)."""

    task: str
    socket_path: Path
    allow: Allowlist
    egress: Egress = field(default_factory=Egress)
    capability: str = field(default_factory=lambda: "bzzz-task-" + secrets.token_urlsafe(32))
    models: list[ModelEndpoint] = field(default_factory=list)
    budget: Budget = field(default_factory=Budget)  # the task's
    spend: Spend = field(default_factory=Spend)
    daily_budget: Budget = field(default_factory=Budget)  # the repository's, today
    daily: Spend = field(default_factory=Spend)  # shared by the repository's tasks today
    on_exceeded: Callable[[str], None] = lambda why: None  # the task is stopped
    connections: int = 0  # open on the socket now

    def charge(self, *, tokens: int = 0, requests: int = 0, bytes_: int = 0,
               cost: float = 0.0) -> str | None:
        """Spend on the task's and the repository's budgets; the first passed, if any."""
        for spend in (self.spend, self.daily):
            spend.add(tokens=tokens, requests=requests, bytes_=bytes_, cost=cost)
        if self.exceeded is None:
            why = self.spend.over(self.budget, "the task's") or self.daily.over(
                self.daily_budget, "the repository's daily")
            if why is not None:
                self.egress.budget_exceeded = why
                log.info("task budget spent", extra={"task": self.task, "why": why})
                self.on_exceeded(why)
        return self.exceeded

    @property
    def exceeded(self) -> str | None:
        """The budget passed, as a sentence (on the task's account): nothing more goes out."""
        return self.egress.budget_exceeded

    def meter(self, model: str, tokens_in: int, tokens_out: int, root: str = "") -> None:
        """Tokens the node spent for this task outside the route (the llm executor's own
        calls to the endpoint at ``root``): on the same account and budgets, priced as that
        endpoint's route prices them."""
        ep = next((m for m in self.models if m.root == root), None)
        cost = ep.cost(tokens_in, tokens_out) if ep is not None else 0.0
        use = self.egress.models.setdefault(model, ModelUse())
        use.tokens_in += tokens_in
        use.tokens_out += tokens_out
        use.cost += cost
        self.charge(tokens=tokens_in + tokens_out, cost=cost)

    def check(self) -> None:
        """Refuse at once once a budget is spent (another task may have used up the
        repository's day)."""
        why = self.charge()
        if why is not None:
            raise GatewayRefusal(429, why)

    def env(self) -> dict[str, str]:
        """What the task's environment gets: the proxy, and its model routes."""
        return {**inside.proxy_env(), **model_env(inside.PROXY, self.models, self.capability)}


PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")  # visible in every sandbox


@dataclass
class Gateway:
    """One per node. ``directory`` holds the task sockets and a copy of the forwarder: the
    task's user may pass through it (to reach its own socket) but not list it."""

    directory: Path
    refused_by_host: Counter[str] = field(default_factory=Counter)  # node-wide, for metrics
    routes: dict[str, Route] = field(default_factory=dict)
    python: str = ""  # the interpreter the forwarder runs with inside a sandbox
    models: list[ModelEndpoint] = field(default_factory=list)  # the node's [[llm]]
    http: httpx.AsyncClient | None = None  # to the model endpoints (made when first used)
    budget: Budget = field(default_factory=Budget)  # each task's (task_budget)
    daily_budget: Budget = field(default_factory=Budget)  # each repository's per UTC day
    daily: dict[str, Spend] = field(default_factory=dict)  # "<repo> <day>" -> spent
    clock: Callable[[], float] = time.time
    # node-wide totals of the routes that ended, for the metrics
    tokens_in: Counter[str] = field(default_factory=Counter)  # model -> tokens
    tokens_out: Counter[str] = field(default_factory=Counter)
    model_requests: Counter[str] = field(default_factory=Counter)
    bytes_through: Counter[str] = field(default_factory=Counter)  # "in" / "out"

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o711)
        self.forwarder = self.directory / "forwarder.py"
        self.forwarder.write_bytes(Path(forwarder.__file__).read_bytes())
        os.chmod(self.forwarder, 0o644)
        self.python = self.python or next((p for p in PYTHONS if os.path.exists(p)), "")

    def describe(self) -> str:
        return f"the task gateway ({len(self.routes)} tasks using it)"

    def spent_today(self, repo: str) -> Spend:
        day = time.strftime("%Y-%m-%d", time.gmtime(self.clock()))
        for key in [k for k in self.daily if not k.endswith(" " + day)]:
            del self.daily[key]  # yesterday's: done with
        return self.daily.setdefault(f"{repo} {day}", Spend())

    @asynccontextmanager
    async def route(self, task: str, allow: Allowlist, repo: str = "",
                    on_exceeded: Callable[[str], None] = lambda why: None
                    ) -> AsyncIterator[Route]:
        """Serve ``task``'s socket while the block runs; the socket is removed after.
        ``on_exceeded`` is told when a budget is spent (the caller stops the task)."""
        name = "".join(c if c.isalnum() else "-" for c in task)[:60]
        path = self.directory / f"{name}-{os.urandom(6).hex()}.sock"
        route = Route(task, path, allow, models=list(self.models), budget=self.budget,
                      daily_budget=self.daily_budget, daily=self.spent_today(repo),
                      on_exceeded=on_exceeded)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(str(path))
        os.chmod(path, 0o666)  # the task's user connects; only the sandbox sees this path
        sock.listen(64)
        listener = trio.SocketListener(sock)
        self.routes[task] = route
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.serve_listeners,
                                   lambda s: self._serve(s, route), [listener])
                yield route
                nursery.cancel_scope.cancel()
        finally:
            self.routes.pop(task, None)
            path.unlink(missing_ok=True)
            self._fold(route)

    def _fold(self, route: Route) -> None:
        for name, use in route.egress.models.items():
            self.tokens_in[name] += use.tokens_in
            self.tokens_out[name] += use.tokens_out
            self.model_requests[name] += use.requests
        for host in route.egress.hosts.values():
            self.bytes_through["out"] += host.bytes_out
            self.bytes_through["in"] += host.bytes_in

    # ------------------------------------------------------------------ one connection

    async def _serve(self, client: trio.abc.Stream, route: Route) -> None:
        async with client:
            if route.connections >= MAX_CONNECTIONS:  # the agent's descriptors are not the
                self._refused(route, "(too many connections)",  # task's to use up
                              f"more than {MAX_CONNECTIONS} connections at once")
                return
            route.connections += 1
            try:
                head, rest = await _read_head(client)
                await self._dispatch(client, route, head, rest)
            except GatewayRefusal as refused:
                if refused.counted:
                    self._refused(route, refused.counted, refused.why)
                with closing_quietly(log, "a refused request"):
                    await _answer(client, refused.status, refused.why)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                log.debug("a task's connection ended", extra={
                    "task": route.task, "error": type(exc).__name__})
            finally:
                route.connections -= 1

    def _refused(self, route: Route, target: str, why: str) -> None:
        """Count a refusal on the task's account and the node's metrics; logged the first
        time a task is refused a target (a task retrying in a loop cannot flood the log)."""
        if target not in route.egress.refused:
            log.info("task egress refused", extra={"task": route.task, "target": target,
                                                   "why": why})
        route.egress.refuse(target, why)
        host = target.rsplit(":", 1)[0]
        if host not in self.refused_by_host and len(self.refused_by_host) >= HOSTS_COUNTED:
            host = "(other)"  # a task inventing names cannot grow the metrics
        self.refused_by_host[host] += 1

    async def _dispatch(self, client: trio.abc.Stream, route: Route, head: bytes,
                        rest: bytes) -> None:
        line, _, headers = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise GatewayRefusal(400, "not an HTTP/1.x request")
        method, target = parts[0].decode("latin-1"), parts[1].decode("latin-1")
        route.check()
        local = _local_path(target)
        if local is not None:
            await self._model(client, route, method, local, headers, rest)
            return
        if method == "CONNECT":
            host, port = _host_port(target, None)
            upstream, use = await self._open(route, host, port)
            async with upstream:
                await client.send_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                use.bytes_out += len(rest)
                if rest:
                    await upstream.send_all(rest)
                await _relay(client, upstream, use, route)
            return
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            raise GatewayRefusal(400, "send https through CONNECT, and http as an absolute URL")
        host, port = normalize_host(url.hostname), url.port or 80
        upstream, use = await self._open(route, host, port)
        async with upstream:
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            # the Host is the URL's: a task cannot name an allowed host and ask its server
            # (a CDN, say) for another site
            kept = [h for h in headers.split(b"\r\n")
                    if h and h.split(b":", 1)[0].strip().lower() not in HOP_HEADERS | {b"host"}]
            netloc = f"[{host}]" if ":" in host else host
            out = b"\r\n".join([f"{method} {path} HTTP/1.1".encode("latin-1"),
                                f"Host: {netloc}{'' if port == 80 else f':{port}'}".encode(),
                                *kept, b"Connection: close", b"", b""])
            use.requests += 1
            use.bytes_out += len(out) + len(rest)
            await upstream.send_all(out + rest)
            await _relay(client, upstream, use, route)

    async def _model(self, client: trio.abc.Stream, route: Route, method: str, path: str,
                     headers: bytes, rest: bytes) -> None:
        """``/llm/<name>/<path>``: the task's model route (bzzz/gateway/models.py)."""
        _, _, tail = path.partition("/llm/")
        name, _, rest_path = tail.partition("/")
        ep = next((m for m in route.models if m.name == name), None) \
            if path.startswith("/llm/") else None
        if ep is None:
            known = ", ".join(m.name for m in route.models) or "none configured"
            raise GatewayRefusal(404, f"no model route {path[:80]!r} (routes: {known})")
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=httpx.Timeout(MODEL_TIMEOUT, connect=10.0))
        pairs = [(n.strip().lower(), v.strip()) for n, _, v in
                 (h.partition(b":") for h in headers.split(b"\r\n") if h)]
        await forward(client, self.http, ep, route, method, "/" + rest_path, pairs, rest)

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def _open(self, route: Route, host: str, port: int) -> tuple[trio.SocketStream,
                                                                         HostUse]:
        if not valid_host(host):  # never echoed: it could be anything a task wrote
            raise GatewayRefusal(400, "not a host name or address", "(not a host name)")
        target = f"{host}:{port}"
        rule = route.allow.allows(host, port)
        if rule is None:
            raise GatewayRefusal(403, f"{target} is not on this task's allowlist", target)
        if why := route.charge(requests=1):
            raise GatewayRefusal(429, why)
        addrs = await _resolve(rule, host, port)
        if not addrs:
            raise GatewayRefusal(403, f"{target} resolves to no address the gateway may dial",
                           target)
        last: OSError | None = None
        for addr in addrs:
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    stream = await _connect(addr, port)
            except (OSError, trio.TooSlowError) as exc:
                last = exc if isinstance(exc, OSError) else OSError(f"timed out: {addr}")
                continue
            use = route.egress.use(host, port)
            use.connections += 1
            return stream, use
        raise GatewayRefusal(502, f"{target} did not answer ({type(last).__name__})")


async def _connect(addr: str, port: int) -> trio.SocketStream:
    """A TCP connection to an address already checked (no resolving, no racing: the
    addresses are tried in order by the caller)."""
    sock = trio.socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                              socket.SOCK_STREAM)
    try:
        await sock.connect((addr, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def _resolve(rule: Rule, host: str, port: int) -> list[str]:
    """The addresses of ``host`` the gateway may dial for ``rule``, in resolver order."""
    if rule.literal:
        return [rule.host] if dialable(rule.host, rule) else []
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    found = [str(info[4][0]) for info in infos]
    return [a for a in dict.fromkeys(found) if dialable(a, rule)]


def _local_path(target: str) -> str | None:
    """The path of a request meant for the gateway itself: origin form, or an absolute URL
    naming the forwarder's own address (a client whose proxy variables apply to its base
    URL too)."""
    if target.startswith("/"):
        return target
    url = urlsplit(target)
    if url.scheme == "http" and url.hostname in ("127.0.0.1", "localhost") and \
            (url.port or 80) == inside.PROXY_PORT:
        return (url.path or "/") + (f"?{url.query}" if url.query else "")
    return None


def _host_port(target: str, default: int | None) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        if default is None:
            raise GatewayRefusal(400, "CONNECT needs host:port")
        return normalize_host(target), default
    return normalize_host(host), int(port)


async def _read_head(stream: trio.abc.Stream) -> tuple[bytes, bytes]:
    """A request's head (up to the blank line) and whatever came after it."""
    buf = b""
    with trio.move_on_after(HEAD_TIMEOUT) as scope:
        while b"\r\n\r\n" not in buf:
            if len(buf) > HEAD_LIMIT:
                raise GatewayRefusal(431, "request head too large")
            chunk = await stream.receive_some(CHUNK)
            if not chunk:
                raise GatewayRefusal(400, "connection closed before the request's head")
            buf += chunk
    if scope.cancelled_caught:
        raise GatewayRefusal(408, "no request head in time")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


async def _answer(stream: trio.abc.Stream, status: int, why: str) -> None:
    body = f"bzzz gateway: {why}\n".encode()
    reason = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout",
              431: "Request Header Fields Too Large", 502: "Bad Gateway"}.get(status, "Error")
    await stream.send_all(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: "
        f"{len(body)}\r\nConnection: close\r\nX-Bzzz-Gateway: refused\r\n\r\n".encode() + body)


async def _relay(client: trio.abc.Stream, upstream: trio.SocketStream, use: HostUse,
                 route: Route) -> None:
    """Copy both ways, counting the bytes, until the host is done (or either side breaks, or
    a budget is spent). The task finishing its sending half-closes the host's side: the
    answer still comes."""

    async def outward(done: trio.CancelScope) -> None:
        try:
            while chunk := await client.receive_some(CHUNK):
                await upstream.send_all(chunk)
                use.bytes_out += len(chunk)
                if route.charge(bytes_=len(chunk)):
                    done.cancel()
            await upstream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            done.cancel()  # the task's side broke: nothing more to carry

    async def inward(done: trio.CancelScope) -> None:
        try:
            while chunk := await upstream.receive_some(CHUNK):
                await client.send_all(chunk)
                use.bytes_in += len(chunk)
                if route.charge(bytes_=len(chunk)):
                    break
        finally:
            done.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(outward, nursery.cancel_scope)
        nursery.start_soon(inward, nursery.cancel_scope)
