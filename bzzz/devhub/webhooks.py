"""Webhook delivery bookkeeping (signatures: bzzz/github/webhooks.py)."""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field


MAX_DELIVERIES = 200


@dataclass
class Delivery:
    id: int
    guid: str
    hook_id: int
    event: str
    action: str | None
    body: bytes
    status_code: int | None = None
    duration: float | None = None
    error: str | None = None
    redelivery: bool = False
    at: float = field(default_factory=time.time)  # when it was queued (delivered_at)


@dataclass
class DeliveryLog:
    deliveries: deque[Delivery] = field(default_factory=lambda: deque(maxlen=MAX_DELIVERIES))

    def new(self, delivery_id: int, hook_id: int, event: str, action: str | None,
            body: bytes, guid: str | None = None) -> Delivery:
        d = Delivery(delivery_id, guid or str(uuid.uuid4()), hook_id, event, action, body,
                     redelivery=guid is not None)
        self.deliveries.append(d)
        return d

    def find(self, hook_id: int, delivery_id: int) -> Delivery | None:
        return next((d for d in self.deliveries if d.hook_id == hook_id and d.id == delivery_id),
                    None)
