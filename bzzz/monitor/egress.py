"""Where the monitor may send a user-given URL (job callbacks): a deny-list of networks.

A holder of an enqueue token chooses the callback URL, so without a check they could make the
monitor POST to services only its own host or network reaches: loopback, link-local (cloud
metadata at 169.254.169.254), "this network", the private networks (RFC 1918, ``fc00::/7``,
carrier-grade NAT ``100.64.0.0/10``, Docker's bridge ``172.17.0.0/16``). By default every
address that is not public is denied (``non-public``: Python's ``ipaddress`` ``is_global``
is false), the ranges above named explicitly as well. ``monitor.callback_allow`` lists the
networks a callback may reach all the same (a receiver on a private network: say so there;
it wins over the deny list). ``monitor.callback_deny`` replaces the deny list (CIDR networks
and ``non-public``; ``[]`` denies nothing, an explicit choice).

The check is made on the addresses the host name resolves to *at delivery*, and the request
then goes to the checked address (the Host header and TLS server name stay the URL's), so a
name that resolves elsewhere between check and connect (DNS rebinding) cannot slip through.
Every address a name resolves to must be allowed: one denied address refuses the URL.
"""

from __future__ import annotations

from ..errors import PolicyError
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NON_PUBLIC = "non-public"  # the deny-list entry for every address that is not global


class NonPublic:
    """Every address that is not public (``is_global`` false), as a deny-list entry."""

    def __contains__(self, address: object) -> bool:
        return isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)) and \
            not address.is_global

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NonPublic)

    def __hash__(self) -> int:
        return hash(NON_PUBLIC)

    def __str__(self) -> str:
        return "of non-public addresses"

    __repr__ = __str__


Network = ipaddress.IPv4Network | ipaddress.IPv6Network | NonPublic

# IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are checked as their IPv4 address
DEFAULT_DENY = ("127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128", "169.254.0.0/16",
                "fe80::/10", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "172.17.0.0/16",
                "100.64.0.0/10", "fc00::/7", NON_PUBLIC)


class Denied(PolicyError):
    """The URL's host is (or resolves to) a denied address; the message names it."""


class Unresolved(PolicyError):
    """The host name did not resolve (worth retrying: DNS may come back)."""


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings (and ``non-public``) to networks; a bad one raises ValueError naming it."""
    out: list[Network] = []
    for value in values:
        if str(value).strip().lower() == NON_PUBLIC:
            out.append(NonPublic())
            continue
        try:
            out.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not a network (CIDR such as 10.0.0.0/8)") from None
    return tuple(out)


def denied_by(address: Address, deny: Sequence[Network],
              allow: Sequence[Network] = ()) -> Network | None:
    """The first network of ``deny`` holding ``address`` (IPv4-mapped IPv6 checked as IPv4),
    None when no network does or one of ``allow`` holds it."""
    mapped = getattr(address, "ipv4_mapped", None)
    for net in allow:
        if address in net or (mapped is not None and mapped in net):
            return None
    if mapped is not None:  # ::ffff:8.8.8.8 is public as its IPv4 address is
        address = mapped
    for net in deny:
        if address in net or (mapped is not None and mapped in net):
            return net
    return None


@dataclass(frozen=True)
class Target:
    """Where to connect for a URL: the checked address, with the URL's own host for the
    Host header and the TLS server name."""
    url: str  # the URL with its host replaced by the address
    host_header: str
    server_name: str | None  # for https


def _with_host(url: str, address: Address) -> str:
    parts = urlsplit(url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal + (f":{parts.port}" if parts.port is not None else "")
    return parts._replace(netloc=netloc).geturl()


def _denied(shown: str | None, net: Network) -> Denied:
    return Denied(f"callback address {shown} is in a denied network {net} "
                  "(monitor.callback_deny; monitor.callback_allow lists networks allowed "
                  "all the same)")


def check_literal(url: str, deny: Sequence[Network], allow: Sequence[Network] = ()) -> None:
    """At enqueue, without DNS: refuse a URL whose host is a denied address or ``localhost``
    (raises Denied). Names are checked again, resolved, at every delivery."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    net = denied_by(address, deny, allow)
    if net is not None:
        raise _denied(urlsplit(url).hostname, net)


async def resolve(url: str, deny: Sequence[Network], allow: Sequence[Network] = ()) -> Target:
    """Resolve the URL's host, check every address against ``deny`` and pick the first."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise Unresolved(f"{host} does not resolve ({type(exc).__name__})") from exc
        addresses = []
        for info in infos:
            a = ipaddress.ip_address(info[4][0].split("%", 1)[0])
            if a not in addresses:
                addresses.append(a)
        if not addresses:  # (not a literal address, the ValueError says nothing more)
            raise Unresolved(f"{host} does not resolve") from None
    for a in addresses:
        net = denied_by(a, deny, allow)
        if net is not None:
            shown = host if str(a) == host else f"{host} ({a})"
            raise _denied(shown, net)
    host_header = parts.netloc.rpartition("@")[2]
    return Target(_with_host(url, addresses[0]), host_header,
                  host if parts.scheme == "https" else None)
