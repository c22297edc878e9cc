"""Model routes: a task reaches each configured ``[[llm]]`` endpoint through its gateway,
which holds the key.

Inside the sandbox the standard variables point at the forwarder (bzzz/gateway/inside.py)::

    OPENAI_BASE_URL  = http://127.0.0.1:3128/llm/<name>/v1   (also OPENAI_API_BASE)
    ANTHROPIC_BASE_URL = http://127.0.0.1:3128/llm/<name>
    OLLAMA_HOST      = http://127.0.0.1:3128/llm/<name>   (also OLLAMA_API_BASE)

and every key variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``) holds the task's
capability: a random token of that route, good only on that task's socket and only while the
task runs. The gateway checks it, drops it, adds the endpoint's own key (``api_key_file``),
and forwards ``/llm/<name>/<path>`` to the endpoint's root + ``/<path>``. The answer streams
back as it comes (``Connection: close``); its token counts are read as it passes
(bzzz/gateway/usage.py) onto the task's account. A 401 or 403 from the model marks the run as
failed (the CLI may well exit 0 after it).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx
import trio

from .policy import Egress, GatewayRefusal, ModelUse
from .usage import Meter

__all__ = ["ModelEndpoint", "forward", "model_env"]

log = logging.getLogger("bzzz.gateway")

MAX_BODY = 32 * 1024 * 1024  # bytes of a model request
BODY_TIMEOUT = 30.0  # seconds for the task to send its request's body
DROP = {b"host", b"authorization", b"x-api-key", b"proxy-authorization", b"proxy-connection",
        b"connection", b"keep-alive", b"content-length", b"transfer-encoding", b"te",
        b"accept-encoding", b"upgrade"}
ANSWER_DROP = {"connection", "keep-alive", "content-length", "transfer-encoding"}

Kind = Literal["auto", "openai", "ollama", "anthropic"]


@dataclass(frozen=True)
class ModelEndpoint:
    name: str
    root: str  # the server's root: no trailing slash, no /v1
    kind: Kind
    key: Callable[[], str | None] = lambda: None  # re-read: a key file may be rotated
    price_in: float = 0.0  # USD per million tokens, for the cost estimate
    price_out: float = 0.0

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.price_in + tokens_out * self.price_out) / 1e6

    def credential(self) -> dict[str, str]:
        key = self.key()
        if not key:
            return {}
        if self.kind == "anthropic":
            return {"x-api-key": key}
        return {"authorization": f"Bearer {key}"}


def model_env(proxy: str, endpoints: list[ModelEndpoint], capability: str) -> dict[str, str]:
    """The variables a task's model clients read, for the first endpoint of each dialect."""
    env: dict[str, str] = {}
    first = {k: next((e for e in endpoints if e.kind in kinds), None) for k, kinds in (
        ("openai", ("openai", "auto")), ("ollama", ("ollama", "auto")),
        ("anthropic", ("anthropic",)))}
    if (ep := first["openai"]) is not None:
        env["OPENAI_BASE_URL"] = env["OPENAI_API_BASE"] = f"{proxy}/llm/{ep.name}/v1"
        env["OPENAI_API_KEY"] = capability
    if (ep := first["ollama"]) is not None:  # Ollama's clients; LiteLLM's (Aider) name
        env["OLLAMA_HOST"] = env["OLLAMA_API_BASE"] = f"{proxy}/llm/{ep.name}"
    if (ep := first["anthropic"]) is not None:
        env["ANTHROPIC_BASE_URL"] = f"{proxy}/llm/{ep.name}"
        env["ANTHROPIC_API_KEY"] = capability
    if endpoints:
        env["BZZZ_MODELS"] = ",".join(e.name for e in endpoints)
    return env


# the model APIs a task may call through a route (the key may grant more: an account's
# files, fine-tuning or administration are not the task's business)
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings",
               "/v1/models", "/v1/messages", "/api/chat", "/api/generate", "/api/embed",
               "/api/embeddings", "/api/tags", "/api/show", "/api/version")


def model_path(path: str) -> bool:
    """Whether ``path`` (with its query) is one of MODEL_PATHS, or below ``/v1/models/``."""
    bare = path.split("?", 1)[0]
    if "/." in bare or "//" in bare or "%" in bare:
        return False  # no dot segments or encodings that a server might resolve elsewhere
    return bare in MODEL_PATHS or bare.startswith(("/v1/models/", "/v1/messages/count_tokens"))


def _presented(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            return text[7:].strip() if text.lower().startswith("bearer ") else text
    return None


def _with_usage(body: bytes, ep: ModelEndpoint, path: str) -> bytes:
    """An OpenAI-dialect streamed chat asks for its usage (``stream_options.include_usage``),
    so that the stream's tokens can be counted; nothing else is changed."""
    if ep.kind not in ("openai", "auto") or not path.endswith("/chat/completions"):
        return body
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if not isinstance(doc, dict) or doc.get("stream") is not True:
        return body
    opts = doc.get("stream_options")
    if isinstance(opts, dict) and "include_usage" in opts:
        return body
    doc["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    return json.dumps(doc).encode()


async def _read_body(client: trio.abc.Stream, headers: list[tuple[bytes, bytes]],
                     rest: bytes) -> bytes:
    length = next((v for n, v in headers if n == b"content-length"), None)
    if any(n == b"transfer-encoding" for n, _ in headers):
        raise GatewayRefusal(411, "send the model request with a Content-Length")
    size = int(length) if length is not None and length.strip().isdigit() else 0
    if size > MAX_BODY:
        raise GatewayRefusal(413, f"a model request above {MAX_BODY // (1024 * 1024)} MiB")
    body = rest
    with trio.move_on_after(BODY_TIMEOUT) as scope:
        while len(body) < size:
            chunk = await client.receive_some(65536)
            if not chunk:
                break
            body += chunk
    if scope.cancelled_caught or len(body) < size:
        raise GatewayRefusal(400, "the model request's body did not come whole")
    return body[:size]


class Charged(Protocol):
    """What forward needs of the task's route (bzzz/gateway/proxy.py Route)."""

    egress: Egress
    capability: str

    def charge(self, *, tokens: int = 0, requests: int = 0, bytes_: int = 0,
               cost: float = 0.0) -> str | None: ...


async def forward(client: trio.abc.Stream, http: httpx.AsyncClient, ep: ModelEndpoint,
                  route: Charged, method: str, path: str,
                  headers: list[tuple[bytes, bytes]], rest: bytes) -> None:
    """One model request of a task to ``ep``, answered on ``client``; a budget spent
    mid-answer cuts it there."""
    egress, capability = route.egress, route.capability
    use = egress.models.setdefault(ep.name, ModelUse())
    if not model_path(path):
        use.refused += 1
        raise GatewayRefusal(403, f"{path[:80]!r} is not a model API the gateway passes on")
    presented = _presented(headers)
    if ep.kind != "ollama" or presented is not None:  # Ollama's clients send no key
        if presented is None or not hmac.compare_digest(presented, capability):
            use.refused += 1
            raise GatewayRefusal(401, "this key is not this task's (a task's key works only "
                                 "for that task, while it runs)")
    body = _with_usage(await _read_body(client, headers, rest), ep, path)
    out = {n.decode("latin-1"): v.decode("latin-1") for n, v in headers if n not in DROP}
    out.update(ep.credential())
    out["accept-encoding"] = "identity"  # so the answer can be read for its usage
    use.requests += 1
    if why := route.charge(requests=1, bytes_=len(body)):
        raise GatewayRefusal(429, why)
    request = http.build_request(method, ep.root + path, headers=out, content=body)
    try:
        answer = await http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise GatewayRefusal(502, f"the model endpoint {ep.name} did not answer "
                             f"({type(exc).__name__})") from exc
    try:
        if answer.status_code in (401, 403):
            use.refused += 1
            egress.model_failure = egress.model_failure or (
                f"the model endpoint {ep.name} answered {answer.status_code}: its key is "
                "missing or refused")
        meter = Meter(answer.headers.get("content-type", ""))
        head = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
        head += [f"{k}: {v}" for k, v in answer.headers.items() if k.lower() not in ANSWER_DROP]
        head += ["Connection: close", "", ""]
        await client.send_all("\r\n".join(head).encode("latin-1"))
        async for chunk in answer.aiter_raw():
            meter.feed(chunk)
            await client.send_all(chunk)
            if _count(use, meter, ep, route, len(chunk)):
                return  # a budget is spent: the answer stops here
        meter.close()
        _count(use, meter, ep, route, 0)
    finally:
        await answer.aclose()


def _count(use: ModelUse, meter: Meter, ep: ModelEndpoint, route: Charged,
           size: int) -> str | None:
    """What the meter counted since last time, onto the task's account and budgets (a
    stream's counts grow as it goes: a budget sees them mid-stream)."""
    more_in, more_out = meter.growth()
    use.tokens_in += more_in
    use.tokens_out += more_out
    cost = ep.cost(more_in, more_out)
    use.cost += cost
    return route.charge(tokens=more_in + more_out, bytes_=size, cost=cost)
