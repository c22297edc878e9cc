"""A client for local LLM servers (httpx on trio): Ollama's native API and the OpenAI-compatible
chat API (llama.cpp, vLLM, LM Studio, Ollama's own ``/v1``). No claim logic here.

- :func:`probe` finds what an endpoint is (``auto``: ``GET /api/tags`` answering
  ``{"models": [...]}`` is Ollama, else ``GET /v1/models`` answering ``{"data": [...]}`` is
  OpenAI-compatible) and which models it serves.
- :func:`stream_chat` streams one chat answer: Ollama's ``POST /api/chat`` (NDJSON) or
  ``POST /v1/chat/completions`` (server-sent events), calling ``on_delta`` for each piece of
  text, with a connect, a first-token and a total deadline.
- :func:`context_length` tells how many tokens a model takes (Ollama: ``/api/show``).

Every failure is an :class:`LLMError` with a ``kind`` and a one-line message that has passed
the redactor (an endpoint's ``api_key`` is registered with it; credentials in a URL are never
shown). ``helpable`` errors are the ones a peer serving the model may not have.
"""

from __future__ import annotations

from ..errors import ExecError
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio

from ..redact import redact, register

KINDS = ("auto", "openai", "ollama")
ERROR_KINDS = ("down", "missing_model", "busy", "stream", "timeout", "bad_reply", "refused")
HELPABLE = frozenset({"down", "missing_model", "busy", "timeout"})
MAX_ERROR_BODY = 64 * 1024
MAX_MESSAGE = 300


@dataclass
class Endpoint:
    url: str
    kind: str = "auto"  # "auto" | "openai" | "ollama"
    models: list[str] = field(default_factory=list)
    name: str = ""
    api_key: "str | Callable[[], str] | None" = None  # a callable re-reads a rotated key file
    context: int | None = None  # configured context length (tokens); wins over discovery


@dataclass
class Answer:
    text: str
    finish_reason: str | None  # "stop", "length", ... as the server said; None if unsaid
    tokens: int | None  # generated tokens as the server counted them; None if not sent
    first_token_s: float | None  # seconds from the request to the first text
    total_s: float
    model: str
    prompt_tokens: int | None = None  # the prompt's tokens as the server counted them


class LLMError(ExecError):
    """``kind``: down (nothing answers, or a server error), missing_model, busy (503/429),
    stream (an error or a broken connection mid-answer), timeout, bad_reply (not the
    protocol), refused (the server rejects the request: 400, 401, 403, 413, ...).
    ``partial`` holds the text streamed before a mid-answer failure."""

    def __init__(self, kind: str, message: str, *, status: int | None = None,
                 partial: str = "") -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown LLMError kind {kind!r}")
        message = redact(" ".join(str(message).split()))
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 1] + "…"
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.partial = partial

    @property
    def helpable(self) -> bool:
        """Whether a peer with the model may do better (down, missing_model, busy, timeout)."""
        return self.kind in HELPABLE

    def __repr__(self) -> str:
        return f"LLMError({self.kind!r}, {self.message!r})"


def estimate_tokens(text: str) -> int:
    """A rough token count: about four characters per token for English text and code. An
    estimate for budgeting prompts, not any model's tokenizer."""
    return (len(text) + 3) // 4


# --- helpers ---------------------------------------------------------------------------------

def root_url(url: str) -> str:
    """The server's root: no trailing slash, no ``/v1`` (OpenAI base URLs often carry it)."""
    base = url.strip().rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base


def _shown(url: str) -> str:
    """A URL fit for a message: no user:password, no query."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "the endpoint"


def _label(ep: Endpoint) -> str:
    return ep.name or _shown(root_url(ep.url))


def _secs(value: float) -> str:
    return f"{value:g} s"


def _headers(ep: Endpoint) -> dict[str, str]:
    key = ep.api_key() if callable(ep.api_key) else ep.api_key
    if key:
        register(key)
        return {"Authorization": f"Bearer {key}"}
    return {}


def _server_message(raw: bytes) -> str:
    """The error text of a reply body: Ollama's ``{"error": "..."}``, OpenAI's
    ``{"error": {"message": ...}}``, or others' ``{"message"}``/``{"detail"}``; else the text."""
    text = raw[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:200]
    return _doc_message(doc) or text[:200]


def _doc_message(doc: Any) -> str:
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, str):
            return err
        if isinstance(err, dict):
            msg = err.get("message")
            if isinstance(msg, str):
                return msg
            return json.dumps(err)[:200]
        for key in ("message", "detail"):
            value = doc.get(key)
            if isinstance(value, str):
                return value
    return ""


_MISSING = re.compile(r"model.*(not found|does not exist|not exist|unknown|no such|not available|"
                      r"not loaded|invalid model)|(unknown|invalid) model", re.I)


def _status_error(ep: Endpoint, model: str, status: int, raw: bytes) -> LLMError:
    what = _server_message(raw)
    where = _label(ep)
    detail = f": {what}" if what else ""
    if status == 404 or (status in (400, 422) and _MISSING.search(what)):
        return LLMError("missing_model", f"{where} does not serve model {model!r} "
                        f"(HTTP {status}{detail})", status=status)
    if status in (429, 503):
        return LLMError("busy", f"{where} is busy (HTTP {status}{detail})", status=status)
    if status >= 500:
        return LLMError("down", f"{where} failed (HTTP {status}{detail})", status=status)
    return LLMError("refused", f"{where} refused the request (HTTP {status}{detail})",
                    status=status)


def _transport_error(ep: Endpoint, exc: Exception, connect_timeout: float,
                     started: bool, partial: str = "") -> LLMError:
    where = _label(ep)
    if isinstance(exc, httpx.ConnectTimeout):
        return LLMError("timeout", f"{where}: no connection within {_secs(connect_timeout)}")
    if isinstance(exc, httpx.PoolTimeout):
        return LLMError("timeout", f"{where}: no free connection within {_secs(connect_timeout)}")
    if isinstance(exc, httpx.ConnectError):
        return LLMError("down", f"nothing answers at {where} ({type(exc).__name__})")
    if started:
        return LLMError("stream", f"{where}: connection lost mid-answer ({type(exc).__name__})",
                        partial=partial)
    return LLMError("down", f"{where} did not answer ({type(exc).__name__})")


# --- discovery -------------------------------------------------------------------------------

async def _get_json(http: httpx.AsyncClient, url: str, headers: dict[str, str],
                    timeout: float) -> tuple[int, Any]:  # noqa: ASYNC109 - httpx's, per request
    resp = await http.get(url, headers=headers, timeout=timeout)
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, None


def _merge(*groups: Iterable[object]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for name in group:
            if isinstance(name, str) and name.strip():
                seen.setdefault(name.strip(), None)
    return list(seen)


async def probe(http: httpx.AsyncClient, ep: Endpoint,
                timeout: float) -> Endpoint:  # noqa: ASYNC109 - httpx's, per request
    """``ep`` with its kind resolved and its models: what the server lists (Ollama's
    ``llama3:latest`` is offered as ``llama3`` too) followed by the configured ones. The
    returned URL is the server's root (a trailing ``/v1`` is dropped). Raises
    ``LLMError("down")`` when nothing answers, ``"refused"`` on 401/403, ``"bad_reply"`` when
    what answers speaks neither API."""
    if ep.kind not in KINDS:
        raise ValueError(f"unknown endpoint kind {ep.kind!r}")
    base = root_url(ep.url)
    headers = _headers(ep)
    kind = ep.kind
    if kind == "auto" and ep.url.strip().rstrip("/").endswith("/v1"):
        kind = "openai"
    last: Exception | None = None
    answered: int | None = None
    if kind in ("auto", "ollama"):
        try:
            status, doc = await _get_json(http, base + "/api/tags", headers, timeout)
        except httpx.HTTPError as exc:
            last = exc
        else:
            answered = status
            if status == 200 and isinstance(doc, dict) and isinstance(doc.get("models"), list):
                names: list[str] = []
                for m in doc["models"]:
                    name = m.get("name") or m.get("model") if isinstance(m, dict) else None
                    if isinstance(name, str) and name:
                        names.append(name)
                        if name.endswith(":latest"):
                            names.append(name.removesuffix(":latest"))
                return replace(ep, url=base, kind="ollama", models=_merge(names, ep.models))
            if status in (401, 403):
                raise LLMError("refused", f"{_label(ep)} refused the request (HTTP {status})",
                               status=status)
        if kind == "ollama":
            if answered is None:
                raise _probe_down(ep, last, timeout)
            raise LLMError("bad_reply", f"{_label(ep)} does not speak Ollama's API "
                           f"(GET /api/tags: HTTP {answered})", status=answered)
        if isinstance(last, httpx.TransportError):  # no answer: /v1 will not answer either
            raise _probe_down(ep, last, timeout)
    try:
        status, doc = await _get_json(http, base + "/v1/models", headers, timeout)
    except httpx.HTTPError as exc:
        raise _probe_down(ep, exc, timeout) from None
    if status == 200 and isinstance(doc, dict) and isinstance(doc.get("data"), list):
        ids = [m.get("id") for m in doc["data"] if isinstance(m, dict)]
        return replace(ep, url=base, kind="openai", models=_merge(ids, ep.models))
    if status in (401, 403):
        raise LLMError("refused", f"{_label(ep)} refused the request (HTTP {status})",
                       status=status)
    if kind == "openai" and status == 404:  # a server without /v1/models: trust the config
        return replace(ep, url=base, kind="openai", models=_merge(ep.models))
    raise LLMError("bad_reply", f"{_label(ep)} speaks neither Ollama's nor the OpenAI API "
                   f"(GET /v1/models: HTTP {status})", status=status)


def _probe_down(ep: Endpoint, exc: Exception | None, timeout: float) -> LLMError:
    if isinstance(exc, httpx.TimeoutException):
        return LLMError("down", f"{_label(ep)} did not answer within {_secs(timeout)}")
    name = type(exc).__name__ if exc else "no answer"
    return LLMError("down", f"nothing answers at {_label(ep)} ({name})")


async def context_length(http: httpx.AsyncClient, ep: Endpoint, model: str,
                         timeout: float = 10.0  # noqa: ASYNC109 - httpx's, per request
                         ) -> int | None:
    """The model's context length in tokens: ``ep.context`` when configured; for Ollama,
    ``model_info["<architecture>.context_length"]`` from ``POST /api/show`` (the model's
    trained maximum; Ollama may run it with a smaller ``num_ctx``); otherwise None. Raises
    ``LLMError("down")`` only when the server does not answer; a missing model or an
    unexpected reply gives None."""
    if ep.context:
        return ep.context
    if ep.kind != "ollama":
        return None
    try:
        resp = await http.post(root_url(ep.url) + "/api/show", json={"model": model},
                               headers=_headers(ep), timeout=timeout)
    except httpx.HTTPError as exc:
        raise _probe_down(ep, exc, timeout) from None
    if resp.status_code != 200:
        return None
    try:
        info = resp.json().get("model_info") or {}
    except (ValueError, AttributeError):
        return None
    if not isinstance(info, dict):
        return None
    arch = info.get("general.architecture")
    value = info.get(f"{arch}.context_length") if isinstance(arch, str) else None
    if value is None:
        value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    return value if isinstance(value, int) and value > 0 else None


# --- chat ------------------------------------------------------------------------------------

class _State:
    """What one stream has produced so far (kept on an object: the parsers update it)."""

    __slots__ = ("parts", "first", "finish", "tokens", "model", "done", "scope", "deadline",
                 "on_delta", "t0", "prompt_tokens")

    def __init__(self, scope: trio.CancelScope, deadline: float,
                 on_delta: Callable[[str], None] | None, model: str, t0: float) -> None:
        self.parts: list[str] = []
        self.first: float | None = None
        self.finish: str | None = None
        self.tokens: int | None = None
        self.prompt_tokens: int | None = None
        self.model = model
        self.done = False
        self.scope = scope
        self.deadline = deadline  # the total deadline, set once the first token is in
        self.on_delta = on_delta
        self.t0 = t0

    def started(self) -> None:
        self.first = time.perf_counter() - self.t0
        self.scope.deadline = self.deadline


async def stream_chat(http: httpx.AsyncClient, ep: Endpoint, model: str,
                      messages: list[dict[str, Any]], *, system: str | None = None,
                      temperature: float | None = None, max_tokens: int | None = None,
                      connect_timeout: float = 10, first_token_timeout: float = 60,
                      total_timeout: float = 600,
                      on_delta: Callable[[str], None] | None = None) -> Answer:
    """Stream one answer from ``model``. ``ep.kind`` must be resolved ("ollama" or "openai";
    see :func:`probe`). ``system`` is sent as a first system message; ``max_tokens`` is
    Ollama's ``options.num_predict`` or OpenAI's ``max_tokens``. ``on_delta`` gets each piece
    of text as it arrives (it runs on the stream's path: keep it quick). Deadlines: the
    connection within ``connect_timeout``, the first text within ``first_token_timeout`` and
    the whole answer within ``total_timeout`` (seconds from the call). Cancelling the caller's
    scope closes the connection at once."""
    if ep.kind not in ("ollama", "openai"):
        raise ValueError(f"endpoint kind {ep.kind!r} is not resolved: probe it first")
    url, body, parse = _chat_request(ep, model, messages, system, temperature, max_tokens)
    headers = _headers(ep)
    headers["Accept"] = "application/x-ndjson" if ep.kind == "ollama" else "text/event-stream"
    timeout = httpx.Timeout(None, connect=connect_timeout, pool=connect_timeout)

    t0 = time.perf_counter()
    now = trio.current_time()
    total_at = now + total_timeout
    scope = trio.CancelScope(deadline=min(now + first_token_timeout, total_at))
    st = _State(scope, total_at, on_delta, model, t0)
    started = False
    with scope:
        try:
            async with http.stream("POST", url, json=body, headers=headers,
                                   timeout=timeout) as resp:
                started = True
                if resp.status_code != 200:
                    raise _status_error(ep, model, resp.status_code, await _error_body(resp))
                await parse(resp, st, ep)
        except httpx.HTTPError as exc:
            raise _transport_error(ep, exc, connect_timeout, started,
                                   "".join(st.parts)) from None
    if scope.cancelled_caught:
        raise _timed_out(ep, st, first_token_timeout, total_timeout)
    if not st.done:
        raise LLMError("stream", f"{_label(ep)}: the stream ended before the answer did",
                       partial="".join(st.parts))
    return Answer("".join(st.parts), st.finish, st.tokens, st.first,
                  time.perf_counter() - t0, st.model, st.prompt_tokens)


# reads a streamed answer into the state
Parser = Callable[[httpx.Response, _State, Endpoint], Awaitable[None]]


def _chat_request(ep: Endpoint, model: str, messages: list[dict[str, Any]],
                  system: str | None, temperature: float | None,
                  max_tokens: int | None) -> tuple[str, dict[str, Any], Parser]:
    """The streaming chat request in the endpoint's dialect: its URL, its JSON body, and
    the parser of its answer."""
    msgs = list(messages)
    if system is not None:
        msgs.insert(0, {"role": "system", "content": system})
    base = root_url(ep.url)
    if ep.kind == "ollama":
        body: dict[str, Any] = {"model": model, "messages": msgs, "stream": True}
        options: dict[str, Any] = {}
        if temperature is not None:
            options["temperature"] = temperature
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        if options:
            body["options"] = options
        return base + "/api/chat", body, _ollama_lines
    body = {"model": model, "messages": msgs, "stream": True,
            "stream_options": {"include_usage": True}}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return base + "/v1/chat/completions", body, _sse_lines


async def _error_body(resp: httpx.Response) -> bytes:
    """The start of an error answer's body (a little over MAX_ERROR_BODY at most)."""
    raw = b""
    async for data in resp.aiter_bytes():
        raw += data
        if len(raw) > MAX_ERROR_BODY:
            break
    return raw


def _timed_out(ep: Endpoint, st: _State, first_token_timeout: float,
               total_timeout: float) -> LLMError:
    """Which deadline passed: the first token's, or the whole answer's."""
    partial = "".join(st.parts)
    if st.first is None and first_token_timeout <= total_timeout:
        return LLMError("timeout", f"{_label(ep)}: no first token within "
                        f"{_secs(first_token_timeout)}", partial=partial)
    return LLMError("timeout", f"{_label(ep)}: no complete answer within "
                    f"{_secs(total_timeout)}", partial=partial)


def _bad_line(ep: Endpoint, st: _State, line: str) -> LLMError:
    return LLMError("bad_reply", f"{_label(ep)}: not a JSON line in the stream: {line[:80]!r}",
                    partial="".join(st.parts))


def _stream_failed(ep: Endpoint, st: _State, doc: Any) -> LLMError:
    return LLMError("stream", f"{_label(ep)}: error mid-answer: {_doc_message(doc)}",
                    partial="".join(st.parts))


# One JSON document per line: the C scanner straight away (json.loads adds an encoding check
# and a whitespace match per call, about half the per-line cost); anything it refuses gets
# a second, lenient look before it counts as garbage.
_scan = json.JSONDecoder().raw_decode


def _lenient(line: str, ep: Endpoint, st: _State) -> Any:
    """``line`` as JSON, or None for a blank line; a bad line raises bad_reply."""
    if not line.strip():
        return None
    try:
        return json.loads(line)
    except ValueError:
        raise _bad_line(ep, st, line) from None


async def _lines(resp: httpx.Response) -> AsyncIterator[list[str]]:
    """The body as lists of complete lines, decoded once per network read (UTF-8 is split at
    newlines only, which never fall inside a character); a last line without its newline
    comes at the end."""
    rest = b""
    async for data in resp.aiter_bytes():
        if rest:
            data = rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut + 1:]
        yield data[:cut].decode("utf-8", "replace").split("\n")
    if rest:
        yield [rest.decode("utf-8", "replace")]


async def _ollama_lines(resp: httpx.Response, st: _State, ep: Endpoint) -> None:
    """Ollama's NDJSON: ``{"message": {"content"}, "done": false}`` lines, a last line with
    ``"done": true``, or an ``{"error"}`` line. The per-line path is kept short."""
    scan = _scan
    append = st.parts.append
    on_delta = st.on_delta
    async for lines in _lines(resp):
        for line in lines:
            if not line or st.done:
                continue
            try:
                doc = scan(line)[0]
            except ValueError:
                doc = _lenient(line, ep, st)
                if doc is None:
                    continue
            if doc.__class__ is not dict:
                raise _bad_line(ep, st, line)
            msg = doc.get("message")
            if msg.__class__ is dict:
                text = msg.get("content")
                if text:
                    if st.first is None:
                        st.started()
                    append(text)
                    if on_delta is not None:
                        on_delta(text)
                elif st.first is None and (msg.get("thinking") or msg.get("tool_calls")):
                    st.started()  # a thinking model is making progress
            if "error" in doc:
                raise _stream_failed(ep, st, doc)
            if doc.get("done"):
                st.done = True
                st.finish = doc.get("done_reason")
                count = doc.get("eval_count")
                st.tokens = count if isinstance(count, int) else None
                prompt = doc.get("prompt_eval_count")
                st.prompt_tokens = prompt if isinstance(prompt, int) else None
                if isinstance(doc.get("model"), str):
                    st.model = doc["model"]


async def _sse_lines(resp: httpx.Response, st: _State, ep: Endpoint) -> None:
    """Server-sent events carrying OpenAI chat chunks: ``data: {...}`` events (an event's
    ``data`` lines joined), ``choices[0].delta.content``, ``finish_reason``, ``usage``, an
    ``{"error"}`` event, ``data: [DONE]``. Comments (``:``) and other fields are skipped."""
    data_lines: list[str] = []
    event = ""
    finished = False  # a finish_reason came: [DONE] is a formality after it
    async for lines in _lines(resp):
        for line in lines:
            if line[:5] == "data:":
                value = line[5:]
                if value[:1] == " ":
                    value = value[1:]
                if value[-1:] == "\r":
                    value = value[:-1]
                data_lines.append(value)
            elif not line or line == "\r":
                if data_lines:
                    payload = data_lines[0] if len(data_lines) == 1 else "\n".join(data_lines)
                    data_lines.clear()
                    if not st.done and _sse_event(payload, event, st, ep):
                        finished = True
                event = ""
            elif line[:6] == "event:":
                event = line[6:].strip()
            # ":" comments, id:, retry: and unknown fields are ignored, as SSE says
    if data_lines and not st.done:  # the stream ended without the event's blank line
        if _sse_event("\n".join(data_lines), event, st, ep):
            finished = True
    if finished:
        st.done = True


def _sse_event(payload: str, event: str, st: _State, ep: Endpoint) -> bool:
    """One event's data: [DONE], an error, or a chunk (see :func:`_openai_chunk`). True when
    it carried a finish_reason."""
    if payload == "[DONE]":
        st.done = True
        return False
    try:
        doc = _scan(payload)[0]
    except ValueError:
        doc = _lenient(payload, ep, st)
        if doc is None:
            return False
    if doc.__class__ is not dict:
        raise _bad_line(ep, st, payload)
    if "error" in doc or event == "error":
        raise _stream_failed(ep, st, doc)
    return _openai_chunk(doc, st)


def _openai_chunk(doc: dict[str, Any], st: _State) -> bool:
    """An OpenAI chat chunk into the state: its text (the first text, reasoning or tool
    call starts the answer's clock), finish_reason, usage and model. True when it carried
    a finish_reason."""
    finished = False
    choices = doc.get("choices")
    if choices:
        choice = choices[0]
        delta = choice.get("delta")
        if delta:
            text = delta.get("content")
            if text:
                if st.first is None:
                    st.started()
                st.parts.append(text)
                if st.on_delta is not None:
                    st.on_delta(text)
            elif st.first is None and (delta.get("reasoning_content") or
                                       delta.get("reasoning") or delta.get("tool_calls")):
                st.started()
        reason = choice.get("finish_reason")
        if reason:
            st.finish = reason
            finished = True
    usage = doc.get("usage")
    if usage:
        count = usage.get("completion_tokens")
        if isinstance(count, int):
            st.tokens = count
        prompt = usage.get("prompt_tokens")
        if isinstance(prompt, int):
            st.prompt_tokens = prompt
    model = doc.get("model")
    if model and model.__class__ is str:
        st.model = model
    return finished
