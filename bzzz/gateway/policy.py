"""What the gateway may dial and what it counts (a core: no I/O).

A name on the allowlist is resolved by the gateway, never by the task; the addresses it
resolves to are dialled only when they are not the node's own (loopback), link-local (a
cloud's metadata service at 169.254.169.254 lives there), unspecified or multicast. An entry
that names an address literal is the operator's explicit word and is dialled as named.

``Egress`` is one task's account: per host, the connections, requests and bytes each way, and
every refused attempt with its reason, for the result comment, the log and the metrics.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ..errors import PolicyError
from .allow import Rule

__all__ = ["Egress", "HostUse", "ModelUse", "GatewayRefusal", "dialable"]

REFUSED_KEPT = 200  # distinct refused hosts an account lists (the rest only counted)


class GatewayRefusal(PolicyError):
    """A request the gateway answers with an error status; ``counted``: the target it is
    counted against on the task's account (None: not counted)."""

    def __init__(self, status: int, why: str, counted: str | None = None) -> None:
        super().__init__(why)
        self.status, self.why, self.counted = status, why, counted


def dialable(address: str, rule: Rule) -> bool:
    """Whether the gateway may connect to ``address`` that ``rule``'s host resolved to."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if rule.literal:
        return str(ip) == rule.host
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast
                or ip.is_reserved)


@dataclass
class HostUse:
    connections: int = 0
    requests: int = 0
    bytes_out: int = 0  # task -> host
    bytes_in: int = 0  # host -> task

    def doc(self) -> dict[str, int]:
        return {"connections": self.connections, "requests": self.requests,
                "bytes_out": self.bytes_out, "bytes_in": self.bytes_in}


@dataclass
class ModelUse:
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    refused: int = 0  # requests the gateway or the model refused (401/403, a budget)
    cost: float = 0.0  # estimated, USD (the endpoint's price_in / price_out)

    def doc(self) -> dict[str, float]:
        return {"requests": self.requests, "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "refused": self.refused,
                "cost": round(self.cost, 6)}


@dataclass
class Egress:
    """One task's use of the gateway."""

    hosts: dict[str, HostUse] = field(default_factory=dict)
    models: dict[str, ModelUse] = field(default_factory=dict)  # endpoint name -> use
    model_failure: str | None = None  # the first model refusal: the run cannot have worked
    budget_exceeded: str | None = None  # the budget that stopped the task
    refused: dict[str, dict[str, int]] = field(default_factory=dict)  # host:port -> why -> n
    refused_total: int = 0

    def use(self, host: str, port: int) -> HostUse:
        return self.hosts.setdefault(f"{host}:{port}", HostUse())

    def refuse(self, target: str, why: str) -> None:
        self.refused_total += 1
        if target in self.refused or len(self.refused) < REFUSED_KEPT:
            reasons = self.refused.setdefault(target, {})
            reasons[why] = reasons.get(why, 0) + 1

    def doc(self) -> dict[str, Any]:
        return {"hosts": {h: u.doc() for h, u in sorted(self.hosts.items())},
                "models": {m: u.doc() for m, u in sorted(self.models.items())},
                "model_failure": self.model_failure,
                "budget_exceeded": self.budget_exceeded,
                "refused": {h: dict(r) for h, r in sorted(self.refused.items())},
                "refused_total": self.refused_total,
                "bytes_out": sum(u.bytes_out for u in self.hosts.values()),
                "bytes_in": sum(u.bytes_in for u in self.hosts.values())}
