"""LAN discovery over mDNS (zeroconf), limited to the interfaces the agent listens on.

Each agent registers ``<peer id>._bzzz._udp.local.`` with its dialable addresses in TXT
records (``a0``, ``a1``, …) and browses for the others. Our own service type keeps Bzzz
meshes apart from IPFS nodes on the same LAN. Zeroconf runs its own threads; what it finds
crosses into trio through a bounded channel (a full channel drops the sighting, which the
next announcement repeats). Discovery only reports peers; the connector dials them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

if TYPE_CHECKING:
    from trio_typing import TaskStatus

SERVICE_TYPE = "_bzzz._udp.local."
MAX_TXT_ADDRS = 8
REGISTER_TIMEOUT = 5.0  # seconds zeroconf's loop may take to register the service

log = logging.getLogger("bzzz.mdns")


@dataclass(frozen=True)
class Sighting:
    peer_id: str
    addrs: tuple[str, ...]
    source: str = "mdns"


def txt_properties(addrs: Sequence[str]) -> dict[str, str]:
    return {f"a{i}": a for i, a in enumerate(addrs[:MAX_TXT_ADDRS])}


def sighting_from_properties(
        name: str,
        props: Mapping[str, str | bytes | None] | Mapping[bytes, bytes | None] | None,
) -> Sighting | None:
    peer_id = name.removesuffix("." + SERVICE_TYPE)
    addrs = []
    for key, value in (props or {}).items():
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key.startswith("a") and key[1:].isdigit() and value:
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            if text.endswith("/p2p/" + peer_id):
                addrs.append(text)
    return Sighting(peer_id, tuple(addrs)) if addrs else None


class MdnsDiscovery:
    def __init__(self, peer_id: str, interface_ips: Sequence[str],
                 sightings: trio.MemorySendChannel[Sighting]) -> None:
        self.peer_id = peer_id
        self.interface_ips = list(interface_ips)
        self._send = sightings
        self._zc: Zeroconf | None = None
        self._browser: ServiceBrowser | None = None
        self._info: ServiceInfo | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._announcing: Awaitable[object] | None = None
        self.dropped = 0

    # zeroconf thread
    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str,
                   state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed or name.startswith(self.peer_id + "."):
            return
        info = zeroconf.get_service_info(service_type, name, timeout=1000)
        if info is None:
            return
        sighting = sighting_from_properties(name, info.decoded_properties)
        if sighting is None:
            return
        try:
            trio.from_thread.run_sync(self._deliver, sighting, trio_token=self._token)
        except (trio.RunFinishedError, trio.Cancelled):
            pass

    def _deliver(self, sighting: Sighting) -> None:
        try:
            self._send.send_nowait(sighting)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self.dropped += 1

    def _start_blocking(self, addrs: Sequence[str], port: int) -> None:
        self._zc = Zeroconf(interfaces=self.interface_ips, ip_version=IPVersion.V4Only)
        self._info = ServiceInfo(
            SERVICE_TYPE,
            f"{self.peer_id}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(ip) for ip in self.interface_ips],
            port=port,
            properties=txt_properties(addrs),
            server=f"bzzz-{self.peer_id[-16:].lower()}.local.",
        )
        # Instance names are peer ids, unique by construction: skip the ~1 s name probe. The
        # service answers queries once registered; its two announcements (0.45 s) go out on
        # zeroconf's loop while the agent starts (register_service would wait for them).
        assert self._zc.loop is not None  # zeroconf starts its loop in its constructor
        # (the announcing task is kept: an event loop holds its tasks only weakly)
        self._announcing = asyncio.run_coroutine_threadsafe(
            self._zc.async_register_service(self._info, cooperating_responders=True),
            self._zc.loop).result(REGISTER_TIMEOUT)
        self._browser = ServiceBrowser(self._zc, SERVICE_TYPE, handlers=[self._on_change])

    def _stop_blocking(self) -> None:
        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            if self._browser is not None:
                self._browser.cancel()
            if self._info is not None:
                zc.unregister_service(self._info)
        finally:
            zc.close()

    async def run(self, addrs: Sequence[str], port: int,
                  task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register and browse until cancelled."""
        if not self.interface_ips:
            log.warning("mdns: no IPv4 interface to announce on; mDNS discovery is off")
            task_status.started()
            await trio.sleep_forever()
        self._token = trio.lowlevel.current_trio_token()
        await trio.to_thread.run_sync(self._start_blocking, addrs, port)
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(2):
                    # trio-typing's stubs predate abandon_on_cancel (trio 0.23)
                    await trio.to_thread.run_sync(self._stop_blocking,  # type: ignore[call-arg]
                                                  abandon_on_cancel=True)
