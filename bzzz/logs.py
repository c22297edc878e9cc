"""Structured logs: one JSON object per line on stderr (or plain text), secrets redacted.

Every line passes the agent's one redactor (bzzz/redact.py): a registered secret (tokens,
keys) or a well-known token shape that slips into an exception text never reaches the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from .redact import redact, register as register_secret  # noqa: F401 (re-exported)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, node_id: str = "") -> None:
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.node_id:
            doc["node"] = self.node_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value if isinstance(value, (int, float, bool, type(None))) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items()
                         if k not in _STANDARD and not k.startswith("_"))
        line = (f"{time.strftime('%H:%M:%S', time.localtime(record.created))} "
                f"{record.levelname.lower():7} {record.name}: {record.getMessage()}"
                f"{' ' + extra if extra else ''}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def setup(level: str = "info", fmt: str = "json", node_id: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(node_id) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # py-libp2p is chatty at INFO and WARNING about routine network events.
    logging.getLogger("libp2p").setLevel(logging.ERROR if level != "debug" else logging.INFO)
    logging.getLogger("zeroconf").setLevel(logging.ERROR)
    # one line per HTTP request (every poll) says nothing an operator needs
    logging.getLogger("httpx").setLevel(logging.WARNING if level != "debug" else logging.INFO)
    logging.getLogger("bzzz.api.server").setLevel(logging.WARNING)
