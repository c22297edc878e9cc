"""Reading a model's token counts from its answers as they pass (a core: no I/O).

Three dialects, each in a plain JSON answer or in a stream:

- OpenAI (chat completions, completions, responses; llama.cpp, vLLM, Ollama's /v1):
  ``usage.prompt_tokens`` / ``completion_tokens`` (``input_tokens`` / ``output_tokens`` in
  the Responses API); a stream (server-sent events) carries ``usage`` in a late chunk (the
  gateway asks for it with ``stream_options.include_usage``), Responses in
  ``response.completed``;
- Anthropic (messages): ``usage.input_tokens`` / ``output_tokens``; a stream says the input
  in ``message_start`` and the output so far in each ``message_delta`` (the last one wins);
- Ollama (native /api/chat, /api/generate): ``prompt_eval_count`` / ``eval_count`` in the
  answer, or in the stream's last line (``"done": true``).

``Meter.feed`` takes the answer's bytes in whatever pieces they come. Streams say their
output count only at the end, so until then each piece of streamed text counts as one token
(what OpenAI-compatible servers, Anthropic and Ollama stream: a token or a few per piece);
the stream's own count replaces that estimate when it comes. So a budget is checked
mid-stream, and the final account is the server's own count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Meter"]

MAX_JSON = 16 * 1024 * 1024  # a plain answer larger than this is not parsed for usage
MAX_LINE = 4 * 1024 * 1024


@dataclass
class Meter:
    content_type: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    _buf: bytes = b""
    _overflow: bool = False
    _told: tuple[int, int] = (0, 0)
    _pieces: int = 0  # streamed pieces of text so far (the estimate)
    _counted: bool = False  # the answer said its output count

    @property
    def output(self) -> int:
        """Output tokens: the answer's count once it said it, else the estimate."""
        return self.tokens_out if self._counted else max(self.tokens_out, self._pieces)

    def growth(self) -> tuple[int, int]:
        """Tokens in and out counted since the last call (out may shrink when the stream's
        own count replaces the estimate)."""
        told_in, told_out = self._told
        self._told = (self.tokens_in, self.output)
        return self.tokens_in - told_in, self.output - told_out

    @property
    def streaming(self) -> bool:
        ct = self.content_type.lower()
        return "event-stream" in ct or "ndjson" in ct or "jsonl" in ct

    def feed(self, chunk: bytes) -> None:
        if self._overflow:
            return
        self._buf += chunk
        if not self.streaming:
            if len(self._buf) > MAX_JSON:
                self._overflow, self._buf = True, b""
            return
        *lines, self._buf = self._buf.split(b"\n")
        if len(self._buf) > MAX_LINE:
            self._overflow, self._buf = True, b""
        for line in lines:
            self._line(line.strip())

    def close(self) -> None:
        """The answer is complete: count what is left."""
        if self._overflow:
            return
        rest, self._buf = self._buf.strip(), b""
        if self.streaming:
            self._line(rest)
        elif rest:
            self._doc(_load(rest))

    def _line(self, line: bytes) -> None:
        if line.startswith(b"data:"):
            line = line[5:].strip()
        if line.startswith(b"{"):
            self._doc(_load(line))

    def _doc(self, doc: Any) -> None:
        if not isinstance(doc, dict):
            return
        if _is_piece(doc):
            self._pieces += 1
        if doc.get("type") == "message_start" and isinstance(doc.get("message"), dict):
            self._usage(doc["message"].get("usage"))  # Anthropic: the input, first
        elif doc.get("type") == "response.completed" and isinstance(doc.get("response"), dict):
            self._usage(doc["response"].get("usage"))  # OpenAI Responses, streamed
        elif "usage" in doc:
            self._usage(doc.get("usage"))
        if "eval_count" in doc or "prompt_eval_count" in doc:  # Ollama
            self.tokens_in = _int(doc.get("prompt_eval_count"), self.tokens_in)
            self.tokens_out = _int(doc.get("eval_count"), self.tokens_out)
            self._counted = self._counted or "eval_count" in doc

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key in ("prompt_tokens", "input_tokens"):
            if key in usage:
                self.tokens_in = _int(usage[key], self.tokens_in)
        for key in ("completion_tokens", "output_tokens"):
            if key in usage:
                self.tokens_out = _int(usage[key], self.tokens_out)
                self._counted = True


def _is_piece(doc: dict[str, Any]) -> bool:
    """A streamed piece of an answer's text, in any of the three dialects."""
    if doc.get("type") == "content_block_delta":  # Anthropic
        return True
    choices = doc.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")  # OpenAI chat
        return isinstance(delta, dict) and bool(delta.get("content") or delta.get("tool_calls"))
    message = doc.get("message")  # Ollama
    return doc.get("done") is False and isinstance(message, dict) and bool(message.get("content"))


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else default


def _load(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
