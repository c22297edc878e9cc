"""A scripted Anthropic Messages server for tests and benches: answers ``POST /v1/messages``
with a short text, streamed (server-sent events, as the API sends them) or not, with the
``usage`` the real API reports, and records what it served so token counts can be compared.

    handler = anthropic_handler(key="sk-…", words=lambda: ["Hello", " there"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ...                                   # handler.served: [(input tokens, output tokens)]
"""

from __future__ import annotations

import http.server
import json
from collections.abc import Callable
from typing import Any

WORDS = ["Hello", " from", " the", " scripted", " server"]


def anthropic_handler(key: str | None = None,
                      words: Callable[[], list[str]] = lambda: list(WORDS)
                      ) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler class of its own (its ``served`` list is its own): ``key``, when given, is
    the only ``x-api-key`` accepted (and no ``Authorization`` with it)."""

    class Anthropic(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        served: list[tuple[int, int]] = []  # (input, output) per answer

        def do_POST(self) -> None:  # noqa: N802 -- http.server's name
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            if key is not None and (self.headers.get("x-api-key") != key
                                    or self.headers.get("authorization")):
                return self._send(401, {"type": "error", "error": {
                    "type": "authentication_error", "message": "invalid x-api-key"}})
            said = words()
            tokens_in = 10 + len(json.dumps(body["messages"])) // 10
            type(self).served.append((tokens_in, len(said)))
            if not body.get("stream"):
                return self._send(200, {
                    "id": "msg_1", "type": "message", "role": "assistant",
                    "model": body["model"], "content": [{"type": "text", "text": "".join(said)}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": tokens_in, "output_tokens": len(said)}})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for name, doc in _events(body["model"], tokens_in, said):
                self.wfile.write(f"event: {name}\ndata: {json.dumps(doc)}\n\n".encode())
                self.wfile.flush()
            self.close_connection = True

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            return

    return Anthropic


def _events(model: str, tokens_in: int, said: list[str]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_2", "type": "message", "role": "assistant", "content": [],
            "model": model, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": w}})
               for w in said]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta", "delta": {
                   "stop_reason": "end_turn", "stop_sequence": None},
                   "usage": {"output_tokens": len(said)}}),
               ("message_stop", {"type": "message_stop"})]
    return events
