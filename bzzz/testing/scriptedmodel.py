"""A scripted model server for the coding-agent CLIs in tests (bzzz/exec/agents/): it runs no
model; its answers make a CLI edit one file with the CLI's own tools, then say it is done.

It speaks the three APIs the CLIs use, streamed (SSE) or whole, as each asks:

- **Anthropic Messages** (``POST /v1/messages``, Claude Code): step 1 a ``tool_use`` of
  ``Read`` on the file (Claude Code edits only a file it has read), step 2 an ``Edit``
  (``old_string`` → ``new_string``), step 3 a text and ``end_turn``. Streamed as
  ``message_start``, ``content_block_start``/``_delta`` (``text_delta``,
  ``input_json_delta``)/``_stop``, ``message_delta`` (``stop_reason``, ``usage``),
  ``message_stop``. The absolute path comes from the system prompt's working directory.
  A request without tools (a title, a summary) gets a short text.
- **OpenAI Chat Completions** (``POST /v1/chat/completions``): for a client that offers
  tools (opencode), ``tool_calls`` of its read and edit tools, then a text; for one that
  offers none (Aider), the edit as a SEARCH/REPLACE block in the text.
- **OpenAI Responses** (``POST /v1/responses``, Codex): an ``apply_patch`` call (a custom
  tool, or a function, or a ``shell`` command running ``apply_patch``, whichever the client
  offers), then a message.

Steps are counted from the conversation's latest prompt (a user message that is not a tool's
result), so a resumed conversation gets the whole script again.

``idle`` answers every request with the final text (no edit is ever asked for); ``refuse``
answers every model request 401 (a key the provider does not take), in each
API's error shape. ``requests`` records what came (path, headers, JSON body); ``served_in``
and ``served_out`` count the tokens its usage fields reported.

``with ScriptedModelThread(Edit("README.md", "old", "new")) as model: model.url``
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Edit", "ScriptedModel", "ScriptedModelThread"]

_CWD = re.compile(r"(?:[Ww]orking directory|cwd|Current working directory)[^:\n]*:\s*`?"
                  r"(/[^\s`<>\"']+)")


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the CLI's working directory
    old: str
    new: str
    final: str = "Done: the file is edited."


@dataclass
class ScriptedModel:
    edit: Edit
    refuse: bool = False
    idle: bool = False  # answer every request with the final text: no edit at all
    requests: list[dict[str, Any]] = field(default_factory=list)
    served_in: int = 0
    served_out: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, path: str, headers: dict[str, str], body: Any) -> None:
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body})

    def usage(self, tokens_in: int, tokens_out: int) -> None:
        with self.lock:
            self.served_in += tokens_in
            self.served_out += tokens_out

    def model_requests(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"].split("?")[0] == path]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(c.get("text", c.get("content", ""))) if isinstance(c, dict)
                         else str(c) for c in content)
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _cwd(doc: dict[str, Any]) -> str:
    texts = [_text_of(doc.get("system")), _text_of(doc.get("instructions"))]
    for m in doc.get("messages") or doc.get("input") or []:
        if isinstance(m, dict):
            texts.append(_text_of(m.get("content")))
    found = [m for t in texts for m in _CWD.finditer(t)]  # the latest: a resumed
    return found[-1].group(1).rstrip(".,)") if found else ""  # session's new checkout


# -------------------------------------------------------------------- Anthropic Messages

def _since_prompt(items: list[Any], is_prompt: Any) -> list[Any]:
    """The items after the latest prompt."""
    last = max((i for i, m in enumerate(items) if isinstance(m, dict) and is_prompt(m)),
               default=-1)
    return items[last + 1:]


def _anthropic_prompt(m: dict[str, Any]) -> bool:
    content = m.get("content")
    return m.get("role") == "user" and not (isinstance(content, list) and any(
        isinstance(c, dict) and c.get("type") == "tool_result" for c in content))


def _anthropic_steps(doc: dict[str, Any]) -> int:
    """How many tool calls the conversation holds since its latest prompt."""
    n = 0
    for m in _since_prompt(doc.get("messages") or [], _anthropic_prompt):
        if m.get("role") == "assistant" and isinstance(m.get("content"), list):
            n += sum(1 for c in m["content"] if isinstance(c, dict) and c.get("type") == "tool_use")
    return n


def anthropic_blocks(edit: Edit, doc: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The content blocks and stop reason of the next answer."""
    tools = {t.get("name") for t in doc.get("tools") or [] if isinstance(t, dict)}
    if "Edit" not in tools:
        return [{"type": "text", "text": "Editing a file"}], "end_turn"
    path = f"{_cwd(doc).rstrip('/')}/{edit.path}"
    step = _anthropic_steps(doc)
    call = f"toolu_{uuid.uuid4().hex[:20]}"
    if step == 0:
        return [{"type": "text", "text": "I'll read the file first."},
                {"type": "tool_use", "id": call, "name": "Read", "input": {"file_path": path}}
                ], "tool_use"
    if step == 1:
        return [{"type": "tool_use", "id": call, "name": "Edit", "input": {
            "file_path": path, "old_string": edit.old, "new_string": edit.new}}], "tool_use"
    return [{"type": "text", "text": edit.final}], "end_turn"


def _anthropic_events(doc: dict[str, Any], blocks: list[dict[str, Any]], stop: str,
                      tin: int, tout: int) -> Iterator[tuple[str, dict[str, Any]]]:
    mid = f"msg_{uuid.uuid4().hex[:20]}"
    yield "message_start", {"type": "message_start", "message": {
        "id": mid, "type": "message", "role": "assistant", "model": doc.get("model", "m"),
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": tin, "output_tokens": 1}}}
    for i, b in enumerate(blocks):
        if b["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {"type": "text", "text": ""}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i,
                                          "delta": {"type": "text_delta", "text": b["text"]}}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": i,
                                          "content_block": {**b, "input": {}}}
            yield "content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(b["input"])}}
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield "message_delta", {"type": "message_delta", "delta": {
        "stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": tout}}
    yield "message_stop", {"type": "message_stop"}


# -------------------------------------------------------------------- Chat Completions

def _chat_tool(tools: list[dict[str, Any]], *names: str) -> dict[str, Any] | None:
    for want in names:
        for t in tools:
            fn = t.get("function") or {}
            if fn.get("name") == want:
                return dict(fn)
    return None


def _arg_name(fn: dict[str, Any], *names: str) -> str:
    props = ((fn.get("parameters") or {}).get("properties") or {})
    return next((n for n in names if n in props), names[0])


def chat_answer(edit: Edit, doc: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(text, tool calls) of the next answer."""
    tools = doc.get("tools") or []
    if not tools:  # Aider: the edit as a SEARCH/REPLACE block
        block = (f"{edit.path}\n```\n<<<<<<< SEARCH\n{edit.old}\n=======\n{edit.new}\n"
                 ">>>>>>> REPLACE\n```\n")
        return f"Here is the change.\n\n{block}\n{edit.final}", []
    steps = sum(len(m.get("tool_calls") or []) for m in _since_prompt(
        doc.get("messages") or [], lambda m: m.get("role") == "user")
        if m.get("role") == "assistant")
    path = f"{_cwd(doc).rstrip('/')}/{edit.path}" if _cwd(doc) else edit.path
    read, change = _chat_tool(tools, "read", "Read"), _chat_tool(tools, "edit", "Edit")
    call = f"call_{uuid.uuid4().hex[:16]}"
    if steps == 0 and read is not None:
        args = {_arg_name(read, "filePath", "file_path", "path"): path}
        return "", [{"id": call, "type": "function",
                     "function": {"name": read["name"], "arguments": json.dumps(args)}}]
    if steps <= 1 and change is not None:
        args = {_arg_name(change, "filePath", "file_path", "path"): path,
                _arg_name(change, "oldString", "old_string"): edit.old,
                _arg_name(change, "newString", "new_string"): edit.new}
        return "", [{"id": call, "type": "function",
                     "function": {"name": change["name"], "arguments": json.dumps(args)}}]
    return edit.final, []


# -------------------------------------------------------------------- Responses (Codex)

def _patch(edit: Edit) -> str:
    old = "".join(f"-{line}\n" for line in edit.old.split("\n"))
    new = "".join(f"+{line}\n" for line in edit.new.split("\n"))
    return f"*** Begin Patch\n*** Update File: {edit.path}\n@@\n{old}{new}*** End Patch\n"


def responses_items(edit: Edit, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The output items of the next answer."""
    since = _since_prompt(doc.get("input") or [], lambda i: i.get("role") == "user")
    done = any(isinstance(i, dict) and i.get("type") in (
        "function_call_output", "custom_tool_call_output") for i in since)
    if done:
        return [{"type": "message", "id": f"msg_{uuid.uuid4().hex[:16]}", "role": "assistant",
                 "status": "completed", "content": [
                     {"type": "output_text", "text": edit.final, "annotations": []}]}]
    tools = {t.get("name"): t for t in doc.get("tools") or [] if isinstance(t, dict)}
    call = f"call_{uuid.uuid4().hex[:16]}"
    base = {"id": f"fc_{uuid.uuid4().hex[:16]}", "call_id": call, "status": "completed"}
    ap = tools.get("apply_patch")
    if ap is not None and ap.get("type") == "custom":
        return [{**base, "type": "custom_tool_call", "name": "apply_patch",
                 "input": _patch(edit)}]
    if ap is not None:
        return [{**base, "type": "function_call", "name": "apply_patch",
                 "arguments": json.dumps({"input": _patch(edit)})}]
    shell = next((n for n in ("shell", "shell_command", "exec_command") if n in tools), "shell")
    script = f"apply_patch <<'EOF'\n{_patch(edit)}EOF\n"
    if shell == "shell":
        args: dict[str, Any] = {"command": ["apply_patch", _patch(edit)]}
    elif shell == "exec_command":
        args = {"cmd": script}
    else:
        args = {"command": script}
    return [{**base, "type": "function_call", "name": shell, "arguments": json.dumps(args)}]


# -------------------------------------------------------------------- the HTTP server

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args: Any) -> None:
        return

    def _body(self) -> Any:
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size) if size else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def _send(self, status: int, doc: Any, ctype: str = "application/json") -> None:
        data = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: Iterator[tuple[str | None, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, doc in events:
            data = doc if isinstance(doc, str) else json.dumps(doc)
            self.wfile.write((f"event: {name}\n" if name else "").encode()
                             + f"data: {data}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.model.record(self.path, dict(self.headers), None)
        if self.path.split("?")[0] == "/v1/models":
            self._send(200, {"object": "list", "data": [
                {"id": "scripted", "object": "model", "created": 0, "owned_by": "bzzz"}]})
        else:
            self._send(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802
        model, body = self.server.model, self._body()
        path = self.path.split("?")[0]
        model.record(self.path, dict(self.headers), body)
        if model.refuse:
            self._refuse(path)
            return
        if path == "/v1/messages":
            self._messages(body)
        elif path == "/v1/messages/count_tokens":
            self._send(200, {"input_tokens": _tokens(json.dumps(body))})
        elif path == "/v1/chat/completions":
            self._chat(body)
        elif path == "/v1/responses":
            self._responses(body)
        else:
            self._send(404, {"error": {"message": f"no {path} here", "type": "not_found"}})

    def _refuse(self, path: str) -> None:
        if path.startswith("/v1/messages"):
            self._send(401, {"type": "error", "error": {
                "type": "authentication_error", "message": "invalid x-api-key"}})
        else:
            self._send(401, {"error": {"message": "Incorrect API key provided",
                                       "type": "invalid_request_error",
                                       "code": "invalid_api_key", "param": None}})

    def _messages(self, doc: dict[str, Any]) -> None:
        edit = self.server.model.edit
        blocks, stop = anthropic_blocks(edit, doc)
        if self.server.model.idle:
            blocks, stop = [{"type": "text", "text": edit.final}], "end_turn"
        tin, tout = _tokens(json.dumps(doc.get("messages"))), _tokens(json.dumps(blocks))
        self.server.model.usage(tin, tout)
        if doc.get("stream"):
            self._stream(iter(list(_anthropic_events(doc, blocks, stop, tin, tout))))
            return
        self._send(200, {"id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message",
                         "role": "assistant", "model": doc.get("model", "m"), "content": blocks,
                         "stop_reason": stop, "stop_sequence": None,
                         "usage": {"input_tokens": tin, "output_tokens": tout}})

    def _chat(self, doc: dict[str, Any]) -> None:
        text, calls = chat_answer(self.server.model.edit, doc)
        if self.server.model.idle:
            text, calls = self.server.model.edit.final, []
        tin, tout = _tokens(json.dumps(doc.get("messages"))), _tokens(text + json.dumps(calls))
        self.server.model.usage(tin, tout)
        finish = "tool_calls" if calls else "stop"
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "created": int(time.time()),
                "model": doc.get("model", "scripted")}
        usage = {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
        if not doc.get("stream"):
            msg: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                msg["tool_calls"] = calls
            self._send(200, {**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": msg, "finish_reason": finish}], "usage": usage})
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str | None, Any]] = [(None, {**chunk, "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})]
        if text:
            events.append((None, {**chunk, "choices": [
                {"index": 0, "delta": {"content": text}, "finish_reason": None}]}))
        for i, c in enumerate(calls):
            events.append((None, {**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": i, **c}]}, "finish_reason": None}]}))
        events.append((None, {**chunk, "choices": [
            {"index": 0, "delta": {}, "finish_reason": finish}]}))
        events.append((None, {**chunk, "choices": [], "usage": usage}))
        events.append((None, "[DONE]"))
        self._stream(iter(events))

    def _responses(self, doc: dict[str, Any]) -> None:
        items = responses_items(self.server.model.edit, doc)
        if self.server.model.idle:
            items = responses_items(self.server.model.edit, {"input": [
                {"type": "function_call_output"}]})
        tin, tout = _tokens(json.dumps(doc.get("input"))), _tokens(json.dumps(items))
        self.server.model.usage(tin, tout)
        rid = f"resp_{uuid.uuid4().hex[:16]}"
        usage = {"input_tokens": tin, "output_tokens": tout, "total_tokens": tin + tout,
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens_details": {"reasoning_tokens": 0}}
        resp = {"id": rid, "object": "response", "created_at": int(time.time()),
                "status": "completed", "model": doc.get("model", "scripted"), "output": items,
                "usage": usage}
        if not doc.get("stream"):
            self._send(200, resp)
            return
        events: list[tuple[str | None, Any]] = [("response.created", {
            "type": "response.created", "response": {**resp, "status": "in_progress",
                                                     "output": [], "usage": None}})]
        for i, item in enumerate(items):
            events.append(("response.output_item.added", {
                "type": "response.output_item.added", "output_index": i, "item": item}))
            events.append(("response.output_item.done", {
                "type": "response.output_item.done", "output_index": i, "item": item}))
        events.append(("response.completed", {"type": "response.completed", "response": resp}))
        self._stream(iter(events))


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    model: ScriptedModel


class ScriptedModelThread:
    """The server in a background thread, on loopback."""

    def __init__(self, edit: Edit, *, refuse: bool = False, idle: bool = False) -> None:
        self.model = ScriptedModel(edit, refuse=refuse, idle=idle)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.model = self.model
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="scriptedmodel")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "ScriptedModelThread":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
