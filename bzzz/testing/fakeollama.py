"""A fake LLM server for tests and benchmarks. It is NOT Ollama: it runs no model and answers
every chat with a scripted reply. It speaks Ollama's documented HTTP protocol (docs/api.md,
docs/api/errors.mdx, docs/api/openai-compatibility.mdx in the Ollama repository) for:

- ``GET /api/version``  -> ``{"version": ...}``
- ``GET /api/tags``     -> ``{"models": [{"name": "llama3:latest", "model", "modified_at",
  "size", "digest", "details": {...}}]}``
- ``POST /api/show``    -> ``{"modelfile", "parameters", "template", "details", "model_info":
  {"general.architecture": "llama", "llama.context_length": N, ...}, "capabilities"}``;
  404 ``{"error": "model 'x' not found"}``
- ``POST /api/chat``    -> NDJSON (``application/x-ndjson``, the default, ``"stream": true``):
  ``{"model", "created_at", "message": {"role": "assistant", "content": "..."}, "done": false}``
  per chunk, then ``{"model", "created_at", "message": {"role": "assistant", "content": ""},
  "done": true, "done_reason": "stop"|"length", "total_duration", "load_duration",
  "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"}`` (durations in
  ns); with ``"stream": false`` one JSON object. ``options.num_predict`` caps the reply (one
  chunk counts as one token) and ends it with ``done_reason: "length"``.
- ``POST /v1/chat/completions`` and ``GET /v1/models`` (Ollama's OpenAI compatibility):
  SSE ``data: {"id", "object": "chat.completion.chunk", "created", "model",
  "system_fingerprint", "choices": [{"index": 0, "delta": {"role": "assistant", "content"},
  "finish_reason": null}]}`` per chunk, a last chunk with ``finish_reason``, a usage chunk
  (``"choices": []``) when ``stream_options.include_usage`` is set, then ``data: [DONE]``;
  ``max_tokens`` caps the reply.

Errors, as Ollama sends them: an HTTP status with ``{"error": "..."}`` (404 ``model "x" not
found, try pulling it first``, 503 ``server busy, please try again.  maximum pending requests
exceeded``, 400 for a bad request) and, once a stream has started, an NDJSON line
``{"error": "..."}`` under the 200 already sent. On ``/v1`` errors are OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``; a mid-stream error there is sent as a
``data: {"error": {...}}`` event (what OpenAI's API does; Ollama's docs say nothing about it).

Knobs (attributes of :class:`FakeOllama`; also settable over HTTP with ``POST /_fake/config``
and readable with ``GET /_fake/state``): ``models`` (name -> :class:`FakeModel` with its
scripted reply chunks and context length), ``chunk_delay`` (seconds between chunks),
``first_token_delay`` (seconds before the first chunk; the status line goes with it, as
Ollama's does), ``error_after`` (send that many chunks, then a mid-stream error),
``error_message``, ``busy`` (503 on every chat), ``openai_only`` (``/api/*`` answers 404, as a
server that speaks only the OpenAI API would), ``api_key`` (when set, requests without
``Authorization: Bearer <key>`` get 401), ``burst`` (write the whole stream in few large writes
instead of one write per chunk: for measuring a client's own cost).

It records what it saw: ``requests`` (method, path, JSON body), ``disconnects`` (clients that
went away before their stream ended) and ``streams_open``.

Run in a background thread (``with FakeOllamaThread() as fake: fake.url``), in a trio nursery
(``await nursery.start(fake.serve)``), or as a process:
``python -m bzzz.testing.fakeollama [--port P] [--config JSON]`` prints its URL when ready.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import trio

from ..asgi import http_request, serve_app
from ..asgi import Receive, Scope, Send

if TYPE_CHECKING:
    from trio_typing import TaskStatus

VERSION = "0.12.6"
BUSY = "server busy, please try again.  maximum pending requests exceeded"
STREAM_ERROR = "an error was encountered while running the model"
def _dumps(doc: Any) -> bytes:
    """Compact, as Go's encoding/json writes it."""
    return json.dumps(doc, separators=(",", ":")).encode()


DEFAULT_REPLY = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]


@dataclass
class FakeModel:
    reply: list[str] = field(default_factory=lambda: list(DEFAULT_REPLY))
    context_length: int = 8192
    family: str = "llama"
    parameter_size: str = "8.0B"
    quantization_level: str = "Q4_0"
    size: int = 4_661_224_676


def full_name(name: str) -> str:
    """Ollama's model names are ``model:tag``; the tag defaults to ``latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class FakeOllama:
    """The ASGI app (see the module docstring for what it speaks)."""

    def __init__(self, models: dict[str, FakeModel] | None = None) -> None:
        self.models: dict[str, FakeModel] = {}
        self.set_models(models if models is not None else {"llama3": FakeModel()})
        self.reset()
        self.url = ""

    # --- configuration -------------------------------------------------------------------

    def set_models(self, models: Mapping[str, FakeModel | list[str] | dict[str, Any]]) -> None:
        out: dict[str, FakeModel] = {}
        for name, m in models.items():
            if isinstance(m, list):
                m = FakeModel(reply=list(m))
            elif isinstance(m, dict):
                m = FakeModel(**m)
            out[full_name(name)] = m
        self.models = out

    def reset(self) -> None:
        """Knobs back to defaults and the records cleared (the models stay)."""
        self.chunk_delay = 0.0
        self.first_token_delay = 0.0
        self.error_after: int | None = None
        self.error_message = STREAM_ERROR
        self.busy = False
        self.openai_only = False
        self.api_key: str | None = None
        self.burst = False
        self._burst_cache: dict[tuple[object, ...], bytes] = {}
        self.requests: list[dict[str, Any]] = []
        self.disconnects = 0
        self.streams_open = 0

    KNOBS = ("chunk_delay", "first_token_delay", "error_after", "error_message", "busy",
             "openai_only", "api_key", "burst")

    def configure(self, doc: dict[str, Any]) -> None:
        if doc.get("reset"):
            self.reset()
        if "models" in doc:
            self.set_models(doc["models"])
        for key in self.KNOBS:
            if key in doc:
                setattr(self, key, doc[key])

    def state(self) -> dict[str, Any]:
        return {"models": {n: asdict(m) for n, m in self.models.items()},
                **{k: getattr(self, k) for k in self.KNOBS},
                "requests": len(self.requests), "disconnects": self.disconnects,
                "streams_open": self.streams_open}

    def last(self, path: str) -> dict[str, Any] | None:
        """The JSON body of the last request to ``path``."""
        for req in reversed(self.requests):
            if req["path"] == path:
                body: dict[str, Any] | None = req["body"]
                return body
        return None

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (request := await http_request(scope, receive, send)) is None:
            return
        method, path = request.method, request.path
        raw = await request.body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        if not path.startswith("/_fake/"):
            self.requests.append({"method": method, "path": path, "body": body})
        hdrs = request.headers
        v1 = path.startswith("/v1/")

        if path == "/_fake/config" and method == "POST":
            self.configure(body or {})
            return await self._json(send, 200, self.state())
        if path == "/_fake/state" and method == "GET":
            return await self._json(send, 200, self.state())

        if self.api_key and hdrs.get("authorization") != f"Bearer {self.api_key}":
            return await self._error(send, 401, "unauthorized", v1)
        if path.startswith("/api/") and self.openai_only:
            return await self._text(send, 404, "404 page not found")
        if bad_json or (raw and not isinstance(body, dict)):
            return await self._error(send, 400, "invalid character in JSON body", v1)
        body = body or {}

        if path == "/api/version" and method == "GET":
            return await self._json(send, 200, {"version": VERSION})
        if path == "/api/tags" and method == "GET":
            return await self._json(send, 200, {"models": [self._tag(n, m)
                                                           for n, m in self.models.items()]})
        if path == "/api/show" and method == "POST":
            return await self._show(send, body)
        if path == "/api/chat" and method == "POST":
            return await self._chat(receive, send, body)
        if path == "/v1/models" and method == "GET":
            return await self._json(send, 200, {"object": "list", "data": [
                {"id": n, "object": "model", "created": 1_700_000_000, "owned_by": "library"}
                for n in self.models]})
        if path == "/v1/chat/completions" and method == "POST":
            return await self._openai_chat(receive, send, body)
        if path in ("/", ""):
            return await self._text(send, 200, "Ollama is running")
        return await self._text(send, 404, "404 page not found")

    # --- replies -------------------------------------------------------------------------

    async def _start(self, send: Send, status: int, ctype: str) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype.encode())]})

    async def _json(self, send: Send, status: int, doc: Any) -> None:
        await self._start(send, status, "application/json; charset=utf-8")
        await send({"type": "http.response.body", "body": _dumps(doc)})

    async def _text(self, send: Send, status: int, text: str) -> None:
        await self._start(send, status, "text/plain")
        await send({"type": "http.response.body", "body": text.encode()})

    async def _error(self, send: Send, status: int, message: str, v1: bool) -> None:
        if not v1:
            return await self._json(send, status, {"error": message})
        kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        await self._json(send, status, {"error": {"message": message, "type": kind,
                                                  "param": None, "code": None}})

    def _tag(self, name: str, m: FakeModel) -> dict[str, Any]:
        return {"name": name, "model": name, "modified_at": "2024-06-04T14:38:31.83753-07:00",
                "size": m.size, "digest": _digest(name),
                "details": {"parent_model": "", "format": "gguf", "family": m.family,
                            "families": [m.family], "parameter_size": m.parameter_size,
                            "quantization_level": m.quantization_level}}

    def _model(self, body: dict[str, Any]) -> tuple[str, FakeModel | None]:
        name = body.get("model") or body.get("name") or ""
        if not isinstance(name, str):
            name = ""
        return name, self.models.get(full_name(name)) if name else None

    async def _show(self, send: Send, body: dict[str, Any]) -> None:
        name, m = self._model(body)
        if not name:
            return await self._error(send, 400, "model is required", False)
        if m is None:
            return await self._error(send, 404, f"model '{name}' not found", False)
        arch = m.family
        await self._json(send, 200, {
            "modelfile": f"# Modelfile generated by \"ollama show\"\nFROM {full_name(name)}\n",
            "parameters": "stop                           \"<|eot_id|>\"",
            "template": "{{ .Prompt }}",
            "details": self._tag(name, m)["details"],
            "model_info": {"general.architecture": arch, "general.file_type": 2,
                           "general.parameter_count": 8_030_261_248,
                           f"{arch}.context_length": m.context_length,
                           f"{arch}.embedding_length": 4096, f"{arch}.block_count": 32},
            "capabilities": ["completion"],
            "modified_at": "2024-06-04T14:38:31.83753-07:00"})

    def _chat_check(self, body: dict[str, Any]) -> tuple[int, str] | tuple[str, FakeModel]:
        name, m = self._model(body)
        if not name:
            return 400, "model is required"
        if not isinstance(body.get("messages", []), list):
            return 400, "messages must be a list"
        if m is None:
            return 404, f'model "{name}" not found, try pulling it first'
        if self.busy:
            return 503, BUSY
        return name, m

    def _chunks(self, m: FakeModel, limit: Any) -> tuple[list[str], str]:
        chunks = m.reply
        if isinstance(limit, int) and limit >= 0 and limit < len(chunks):
            return chunks[:limit], "length"
        return chunks, "stop"

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> int:
        text = "".join(str(msg.get("content", "")) for msg in body.get("messages") or []
                       if isinstance(msg, dict))
        return max(1, len(text) // 4)

    async def _chat(self, receive: Receive, send: Send, body: dict[str, Any]) -> None:
        checked = self._chat_check(body)
        if isinstance(checked[0], int):
            return await self._error(send, checked[0], checked[1], False)
        name, m = checked
        given = body.get("options")
        options = given if isinstance(given, dict) else {}
        chunks, reason = self._chunks(m, options.get("num_predict"))
        started = time.perf_counter_ns()

        def final() -> dict[str, Any]:
            took = time.perf_counter_ns() - started
            return {"model": name, "created_at": _now(),
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": reason, "done": True, "total_duration": took,
                    "load_duration": 1_000_000, "prompt_eval_count": self._prompt_tokens(body),
                    "prompt_eval_duration": 1_000_000, "eval_count": len(chunks),
                    "eval_duration": took}

        if body.get("stream") is False:
            await self._sleep_first()
            doc = final()
            doc["message"]["content"] = "".join(chunks)
            return await self._json(send, 200, doc)

        def line(content: str) -> bytes:
            return _dumps({"model": name, "created_at": _now(),
                           "message": {"role": "assistant", "content": content},
                           "done": False}) + b"\n"

        def error_line() -> bytes:
            return _dumps({"error": self.error_message}) + b"\n"

        await self._stream(receive, send, "application/x-ndjson", chunks, line,
                           lambda: [_dumps(final()) + b"\n"], error_line,
                           ("chat", name, len(chunks), reason))

    async def _openai_chat(self, receive: Receive, send: Send, body: dict[str, Any]) -> None:
        checked = self._chat_check(body)
        if isinstance(checked[0], int):
            return await self._error(send, checked[0], checked[1], True)
        name, m = checked
        chunks, reason = self._chunks(m, body.get("max_tokens"))
        cid = f"chatcmpl-{len(self.requests) % 999}"
        created = int(time.time())
        usage = {"prompt_tokens": self._prompt_tokens(body), "completion_tokens": len(chunks),
                 "total_tokens": self._prompt_tokens(body) + len(chunks)}
        if not body.get("stream"):
            await self._sleep_first()
            return await self._json(send, 200, {
                "id": cid, "object": "chat.completion", "created": created, "model": name,
                "system_fingerprint": "fp_ollama",
                "choices": [{"index": 0, "message": {"role": "assistant",
                                                     "content": "".join(chunks)},
                             "finish_reason": reason}],
                "usage": usage})

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": name, "system_fingerprint": "fp_ollama",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        def event(doc: Any) -> bytes:
            return b"data: " + _dumps(doc) + b"\n\n"

        def line(content: str) -> bytes:
            return event(chunk({"role": "assistant", "content": content}, None))

        def tail() -> list[bytes]:
            out = [event(chunk({"role": "assistant", "content": ""}, reason))]
            opts = body.get("stream_options")
            if isinstance(opts, dict) and opts.get("include_usage"):
                last = chunk({}, None)
                last["choices"] = []
                last["usage"] = usage
                out.append(event(last))
            out.append(b"data: [DONE]\n\n")
            return out

        def error_line() -> bytes:
            return event({"error": {"message": self.error_message, "type": "api_error",
                                    "param": None, "code": None}})

        usage_asked = bool(isinstance(body.get("stream_options"), dict)
                           and body["stream_options"].get("include_usage"))
        await self._stream(receive, send, "text/event-stream", chunks, line, tail, error_line,
                           ("v1", name, len(chunks), reason, usage_asked))

    async def _sleep_first(self) -> None:
        if self.first_token_delay > 0:
            await trio.sleep(self.first_token_delay)

    async def _stream(self, receive: Receive, send: Send, ctype: str, chunks: list[str],
                      line: Callable[[str], bytes], tail: Callable[[], list[bytes]],
                      error_line: Callable[[], bytes], key: tuple[object, ...]) -> None:
        """Send ``chunks`` (one write each, paced) and the tail, noticing a client that goes
        away: the sender is cancelled and the disconnect counted. In burst mode the stream
        for ``key`` is built once and reused (its timestamps are stale: it is for benches)."""
        self.streams_open += 1
        gone = ended = False
        try:
            async with trio.open_nursery() as nursery:
                async def watch() -> None:
                    nonlocal gone
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            if not ended:  # hypercorn reports one after a complete reply too
                                gone = True
                                nursery.cancel_scope.cancel()
                            return

                nursery.start_soon(watch)
                await self._sleep_first()
                await self._start(send, 200, ctype)
                error_after, delay = self.error_after, self.chunk_delay
                if self.burst and error_after is None:
                    blob = self._burst_cache.get(key)
                    if blob is None:
                        blob = b"".join([line(c) for c in chunks] + tail())
                        self._burst_cache = {key: blob}
                    for i in range(0, len(blob), 65536):
                        await send({"type": "http.response.body", "body": blob[i:i + 65536],
                                    "more_body": True})
                else:
                    for i, content in enumerate(chunks):
                        if error_after is not None and i >= error_after:
                            break
                        if i and delay > 0:
                            await trio.sleep(delay)
                        await send({"type": "http.response.body", "body": line(content),
                                    "more_body": True})
                    if error_after is not None:
                        await send({"type": "http.response.body", "body": error_line(),
                                    "more_body": True})
                    else:
                        for piece in tail():
                            await send({"type": "http.response.body", "body": piece,
                                        "more_body": True})
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                nursery.cancel_scope.cancel()
        finally:
            self.streams_open -= 1
            if gone:
                self.disconnects += 1

    # --- running -------------------------------------------------------------------------

    async def serve(self, host: str = "127.0.0.1", port: int = 0,
                    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started`` gets the base URL."""
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(
                lambda task_status: serve_app(self, host, port, keep_alive=30.0,
                                              task_status=task_status))
            self.url = (bound or [""])[0].replace("0.0.0.0", "127.0.0.1")
            task_status.started(self.url)


class FakeOllamaThread:
    """The fake on its own trio loop in a background thread:
    ``with FakeOllamaThread() as fake: ... fake.url, fake.app.busy = True ...``."""

    def __init__(self, models: dict[str, FakeModel] | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.app = FakeOllama(models)
        self.host, self.port = host, port
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.app.url

    def __enter__(self) -> "FakeOllamaThread":
        def target() -> None:
            async def main() -> None:
                with trio.CancelScope() as scope:
                    self._cancel = scope
                    self._token = trio.lowlevel.current_trio_token()
                    async with trio.open_nursery() as nursery:
                        await nursery.start(self.app.serve, self.host, self.port)
                        self._started.set()
            try:
                trio.run(main)
            except BaseException as exc:  # reported to the caller
                self.error = exc
                self._started.set()

        self._thread = threading.Thread(target=target, daemon=True, name="fakeollama")
        self._thread.start()
        self._started.wait(30)
        if self.error is not None or not self.url:
            raise RuntimeError(f"fake Ollama did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._cancel is not None:
            try:
                self._token.run_sync_soon(self._cancel.cancel)
            except trio.RunFinishedError:
                pass
        if self._thread is not None:
            self._thread.join(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake server speaking Ollama's documented "
                                                 "API with scripted replies (not Ollama).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="", help="JSON, as for POST /_fake/config")
    args = parser.parse_args(argv)
    app = FakeOllama()
    if args.config:
        app.configure(json.loads(args.config))

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(app.serve, args.host, args.port)
            print(url, flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
