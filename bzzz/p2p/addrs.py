"""Interface addresses, and turning wildcard listen addresses into addresses peers can dial."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence

from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

_SIOCGIFADDR = 0x8915


def interface_ipv4s() -> dict[str, str]:
    """Map each up interface with an IPv4 address to that address (Linux)."""
    result: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR,
                                     struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on it
            result[name] = socket.inet_ntoa(packed[20:24])
    return result


def is_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def expand_wildcards(addrs: Sequence[Multiaddr], local_ips: Iterable[str]) -> list[Multiaddr]:
    """Replace ``/ip4/0.0.0.0`` by each local address (loopback only if nothing else exists).

    Pure function: the caller passes the machine's addresses, so it is testable.
    """
    ips = sorted(set(local_ips))
    routable = [ip for ip in ips if not is_loopback(ip)] or [ip for ip in ips if is_loopback(ip)]
    out: list[Multiaddr] = []
    seen: set[str] = set()
    for addr in addrs:
        text = str(addr)
        if text.startswith("/ip4/0.0.0.0/"):
            rest = text[len("/ip4/0.0.0.0"):]
            candidates = [f"/ip4/{ip}{rest}" for ip in routable]
        else:
            candidates = [text]
        for cand in candidates:
            if cand not in seen:
                seen.add(cand)
                out.append(Multiaddr(cand))
    return out


def listen_ips(listen: Sequence[str], local_ips: Iterable[str]) -> list[str]:
    """The IPv4 addresses a node really listens on (for mDNS interface selection)."""
    ips: set[str] = set()
    local = set(local_ips)
    for text in listen:
        ip = Multiaddr(text).value_for_protocol("ip4") if "/ip4/" in text else None
        if ip is None:
            continue
        if ip == "0.0.0.0":
            ips.update(i for i in local if not is_loopback(i))
        else:
            ips.add(ip)
    return sorted(ips)


def tcp_port(addr: Multiaddr) -> int | None:
    try:
        return int(addr.value_for_protocol("tcp"))
    except (MultiaddrError, ValueError):  # no TCP in it (ProtocolLookupError), or no number
        return None
