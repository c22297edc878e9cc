"""The task gateway's allowlist (a core: no I/O).

An entry is one of::

    example.org          that host, on ports 80 and 443
    *.example.org        any name under example.org (not example.org itself), ports 80 and 443
    example.org:8443     that host on that port only (also *.example.org:8443)
    10.0.0.7:3141        an address literal with its port ([::1]:3141 for IPv6)
    @pypi                a named preset (PRESETS): the hosts a tool needs, nothing else

A node's ``task_egress`` lists what every task may reach (empty by default: nothing). A
repository may ask for more in its own configuration; each addition counts only when the
operator's ceiling (``task_egress_max``) covers it, so a repository can narrow, never widen,
what its node allows. Names are compared lower-case without a trailing dot.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InputError

__all__ = ["PRESETS", "REPO_FILE", "REPO_FILE_MAX", "Allowlist", "EgressError", "Rule", "WEB_PORTS", "parse",
           "parse_all", "repo_entries"]

WEB_PORTS = frozenset({80, 443})

# the hosts a tool talks to, from its own documentation; none is on unless named
PRESETS: dict[str, tuple[str, ...]] = {
    "pypi": ("pypi.org", "files.pythonhosted.org"),
    "npm": ("registry.npmjs.org",),
    "debian": ("deb.debian.org", "security.debian.org"),
    "crates": ("crates.io", "index.crates.io", "static.crates.io"),
    "go": ("proxy.golang.org", "sum.golang.org"),
    "github": ("github.com", "codeload.github.com"),  # git over HTTPS
}

# a repository's own settings for its tasks, at its root: ``[task] egress = ["@npm"]``
REPO_FILE = ".bzzz.toml"
REPO_FILE_MAX = 64 * 1024  # bytes of it read

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class EgressError(InputError, ValueError):
    """An allowlist entry that does not parse (the message quotes it)."""


@dataclass(frozen=True)
class Rule:
    """One parsed entry: ``host`` is a name, a ``*.`` suffix pattern or an address literal;
    ``ports`` empty means the web ports."""

    host: str
    port: int | None = None
    wildcard: bool = False
    literal: bool = False  # an IP address, not a name

    def ports(self) -> frozenset[int]:
        return frozenset({self.port}) if self.port is not None else WEB_PORTS

    def matches(self, host: str, port: int) -> bool:
        if port not in self.ports():
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def covers(self, other: "Rule") -> bool:
        """Whether everything ``other`` allows, this rule allows too (the ceiling test)."""
        if not other.ports() <= self.ports():
            return False
        if self.wildcard:
            return other.host.endswith("." + self.host)
        return not other.wildcard and other.host == self.host

    def __str__(self) -> str:
        host = ("*." if self.wildcard else "") + (
            f"[{self.host}]" if ":" in self.host else self.host)
        return host if self.port is None else f"{host}:{self.port}"


def normalize_host(host: str) -> str:
    """A host as the gateway compares it: lower-case, no trailing dot, no IPv6 brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def valid_host(host: str) -> bool:
    """A host name of letters, digits, ``-`` and ``_`` labels, or an address literal."""
    return _literal(host) or (0 < len(host) <= 253 and all(
        _LABEL.match(label) for label in host.split(".")))


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6] or [v6]:port
        end = entry.find("]")
        if end < 0:
            raise EgressError(f"task_egress: {entry!r}: unclosed [")
        rest = entry[end + 1:]
        if rest and not rest.startswith(":"):
            raise EgressError(f"task_egress: {entry!r}: text after ]")
        return entry[1:end], _port(entry, rest[1:]) if rest else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, _port(entry, port)
    return entry, None


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise EgressError(f"task_egress: {entry!r}: the port must be 1-65535")
    return int(text)


def parse(entry: str) -> list[Rule]:
    """The rules of one entry (a preset gives several)."""
    text = entry.strip()
    if text.startswith("@"):
        hosts = PRESETS.get(text[1:].lower())
        if hosts is None:
            raise EgressError(f"task_egress: unknown preset {text!r} (known: "
                              f"{', '.join('@' + p for p in sorted(PRESETS))})")
        return [Rule(h) for h in hosts]
    host, port = _split_port(text)
    host = normalize_host(host)
    if _literal(host):
        if port is None:
            raise EgressError(f"task_egress: {entry!r}: an address needs its port")
        return [Rule(str(ipaddress.ip_address(host)), port, literal=True)]
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    labels = name.split(".")
    if not name or not all(_LABEL.match(label) for label in labels) or (
            wildcard and len(labels) < 2):
        raise EgressError(f"task_egress: {entry!r} is not a host, *.domain, host:port or "
                          "@preset")
    return [Rule(name, port, wildcard=wildcard)]


def parse_all(entries: Iterable[str]) -> list[Rule]:
    return [rule for entry in entries for rule in parse(entry)]


@dataclass(frozen=True)
class Allowlist:
    """What one task may reach through the gateway."""

    rules: tuple[Rule, ...] = ()
    # additions a repository asked for that its node's ceiling does not cover (reported)
    beyond_ceiling: tuple[str, ...] = ()

    @classmethod
    def build(cls, node: Iterable[str], repo: Iterable[str] = (),
              ceiling: Iterable[str] = ()) -> "Allowlist":
        """The node's entries, plus each of the repository's that the ceiling covers."""
        rules = parse_all(node)
        top = parse_all(ceiling)
        refused: list[str] = []
        for entry in repo:
            for rule in parse(entry):
                if any(c.covers(rule) for c in top):
                    rules.append(rule)
                else:
                    refused.append(str(rule))
        return cls(tuple(dict.fromkeys(rules)), tuple(dict.fromkeys(refused)))

    def allows(self, host: str, port: int) -> Rule | None:
        """The rule that lets ``host:port`` through, or None."""
        host = normalize_host(host)
        if _literal(host):
            host = str(ipaddress.ip_address(host))
        return next((r for r in self.rules if r.matches(host, port)), None)

    def describe(self) -> list[str]:
        return [str(r) for r in self.rules]


def repo_entries(text: str) -> list[str]:
    """The egress entries a repository's REPO_FILE asks for (``[task] egress``); each is
    checked as an entry. Raises EgressError naming what is wrong."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EgressError(f"{REPO_FILE}: {exc}") from exc
    task = doc.get("task", {})
    entries = task.get("egress", []) if isinstance(task, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise EgressError(f"{REPO_FILE}: [task] egress must be a list of strings")
    parse_all(entries)
    return entries
