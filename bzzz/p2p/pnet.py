"""Private networks (libp2p pnet v1), as go- and js-libp2p implement them.

Each side of a raw connection sends a random 24-byte nonce, then everything it writes is XORed
with the XSalsa20 keystream of (PSK, its nonce). py-libp2p 0.8.1 uses plain Salsa20 with an
8-byte nonce instead, which no other implementation speaks; this module replaces it.

XSalsa20 = HSalsa20(key, nonce[:16]) gives a subkey (once per connection, so pure Python is
fine), then Salsa20(subkey, nonce[16:24]) from pycryptodome does the bulk work in C.

A peer with another key is detected at once rather than by a time-out: the first bytes every
libp2p connection carries in each direction are the multistream-select header, so after
decryption they are known; anything else means the keys differ. A peer that sends nothing at
all is cut off after ``handshake_timeout`` seconds.
"""

from __future__ import annotations

from ..errors import BzzzError, closing_quietly
import base64
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from Crypto.Cipher import Salsa20
from libp2p.abc import IRawConnection
from libp2p.connection_types import ConnectionType
from libp2p.network.connection.raw_connection import RawConnection
from multiaddr import Multiaddr

log = logging.getLogger("bzzz.pnet")

NONCE_SIZE = 24
KEY_SIZE = 32
PSK_HEADER = "/key/swarm/psk/1.0.0/"
# varint(19) + "/multistream/1.0.0\n": the first bytes of every libp2p connection, both ways.
MULTISTREAM_HEADER = b"\x13/multistream/1.0.0\n"
DEFAULT_HANDSHAKE_TIMEOUT = 5.0


class PnetError(BzzzError):
    """A pnet key file is invalid, or a peer is not in our private network."""


class _NoPnet(PnetError):
    """Internal: the peer speaks libp2p without pnet."""


# ---------------------------------------------------------------- the cipher (no I/O)

def _rotl(v: int, c: int) -> int:
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    """HSalsa20: derive a 32-byte subkey from a 32-byte key and a 16-byte input."""
    if len(key) != KEY_SIZE or len(nonce16) != 16:
        raise ValueError("hsalsa20 takes a 32-byte key and a 16-byte nonce")
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", nonce16)
    c = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"
    x = [c[0], k[0], k[1], k[2], k[3], c[1], n[0], n[1],
         n[2], n[3], c[2], k[4], k[5], k[6], k[7], c[3]]
    for _ in range(10):
        # column round
        x[4] ^= _rotl((x[0] + x[12]) & 0xFFFFFFFF, 7)
        x[8] ^= _rotl((x[4] + x[0]) & 0xFFFFFFFF, 9)
        x[12] ^= _rotl((x[8] + x[4]) & 0xFFFFFFFF, 13)
        x[0] ^= _rotl((x[12] + x[8]) & 0xFFFFFFFF, 18)
        x[9] ^= _rotl((x[5] + x[1]) & 0xFFFFFFFF, 7)
        x[13] ^= _rotl((x[9] + x[5]) & 0xFFFFFFFF, 9)
        x[1] ^= _rotl((x[13] + x[9]) & 0xFFFFFFFF, 13)
        x[5] ^= _rotl((x[1] + x[13]) & 0xFFFFFFFF, 18)
        x[14] ^= _rotl((x[10] + x[6]) & 0xFFFFFFFF, 7)
        x[2] ^= _rotl((x[14] + x[10]) & 0xFFFFFFFF, 9)
        x[6] ^= _rotl((x[2] + x[14]) & 0xFFFFFFFF, 13)
        x[10] ^= _rotl((x[6] + x[2]) & 0xFFFFFFFF, 18)
        x[3] ^= _rotl((x[15] + x[11]) & 0xFFFFFFFF, 7)
        x[7] ^= _rotl((x[3] + x[15]) & 0xFFFFFFFF, 9)
        x[11] ^= _rotl((x[7] + x[3]) & 0xFFFFFFFF, 13)
        x[15] ^= _rotl((x[11] + x[7]) & 0xFFFFFFFF, 18)
        # row round
        x[1] ^= _rotl((x[0] + x[3]) & 0xFFFFFFFF, 7)
        x[2] ^= _rotl((x[1] + x[0]) & 0xFFFFFFFF, 9)
        x[3] ^= _rotl((x[2] + x[1]) & 0xFFFFFFFF, 13)
        x[0] ^= _rotl((x[3] + x[2]) & 0xFFFFFFFF, 18)
        x[6] ^= _rotl((x[5] + x[4]) & 0xFFFFFFFF, 7)
        x[7] ^= _rotl((x[6] + x[5]) & 0xFFFFFFFF, 9)
        x[4] ^= _rotl((x[7] + x[6]) & 0xFFFFFFFF, 13)
        x[5] ^= _rotl((x[4] + x[7]) & 0xFFFFFFFF, 18)
        x[11] ^= _rotl((x[10] + x[9]) & 0xFFFFFFFF, 7)
        x[8] ^= _rotl((x[11] + x[10]) & 0xFFFFFFFF, 9)
        x[9] ^= _rotl((x[8] + x[11]) & 0xFFFFFFFF, 13)
        x[10] ^= _rotl((x[9] + x[8]) & 0xFFFFFFFF, 18)
        x[12] ^= _rotl((x[15] + x[14]) & 0xFFFFFFFF, 7)
        x[13] ^= _rotl((x[12] + x[15]) & 0xFFFFFFFF, 9)
        x[14] ^= _rotl((x[13] + x[12]) & 0xFFFFFFFF, 13)
        x[15] ^= _rotl((x[14] + x[13]) & 0xFFFFFFFF, 18)
    return struct.pack("<8I", x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9])


class XSalsa20:
    """A running XSalsa20 keystream XOR (encryption and decryption are the same)."""

    def __init__(self, key: bytes, nonce: bytes) -> None:
        if len(nonce) != NONCE_SIZE:
            raise ValueError("XSalsa20 takes a 24-byte nonce")
        self._cipher = Salsa20.new(key=hsalsa20(key, nonce[:16]), nonce=nonce[16:])

    def xor(self, data: bytes) -> bytes:
        return self._cipher.encrypt(data)


# ---------------------------------------------------------------- the key file (no I/O)

def parse_psk(text: bytes) -> bytes:
    """Parse a ``swarm.key`` (``/key/swarm/psk/1.0.0/``, an encoding line, the key)."""
    try:
        lines = text.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise PnetError("not a swarm key file (not ASCII)") from None
    lines = [line.strip() for line in lines]
    if len(lines) < 3 or lines[0] != PSK_HEADER:
        raise PnetError(f"not a swarm key file (first line must be {PSK_HEADER})")
    encoding, body = lines[1], "".join(lines[2:])
    try:
        if encoding == "/base16/":
            key = bytes.fromhex(body)
        elif encoding == "/base64/":
            key = base64.b64decode(body, validate=True)
        else:
            raise PnetError(f"unsupported key encoding {encoding!r} (use /base16/ or /base64/)")
    except ValueError:
        raise PnetError(f"swarm key is not valid {encoding.strip('/')}") from None
    if len(key) != KEY_SIZE:
        raise PnetError(f"swarm key must be {KEY_SIZE} bytes, got {len(key)}")
    return key


def format_psk(key: bytes) -> str:
    return f"{PSK_HEADER}\n/base16/\n{key.hex()}\n"


def load_psk(path: str | os.PathLike[str]) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PnetError(f"{path}: {exc.strerror}") from None
    try:
        return parse_psk(data)
    except PnetError as exc:
        raise PnetError(f"{path}: {exc}") from None


# ---------------------------------------------------------------- the connection wrapper

@dataclass
class PnetStats:
    """Counters the agent exports; one instance per host."""

    handshakes: int = 0
    rejected_wrong_key: int = 0
    rejected_no_pnet: int = 0
    rejected_timeout: int = 0
    rejected_other: int = 0
    on_reject: list[Callable[[str], object]] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        if reason == "wrong_key":
            self.rejected_wrong_key += 1
        elif reason == "no_pnet":
            self.rejected_no_pnet += 1
        elif reason == "timeout":
            self.rejected_timeout += 1
        else:
            self.rejected_other += 1
        for callback in self.on_reject:
            callback(reason)

    @property
    def rejected(self) -> int:
        return (self.rejected_wrong_key + self.rejected_no_pnet + self.rejected_timeout
                + self.rejected_other)


class PnetConnection(RawConnection):
    """Wraps a raw connection (py-libp2p's ``IRawConnection``) in pnet encryption.

    It subclasses RawConnection only to pass the swarm's isinstance checks; every method
    delegates to the wrapped connection (RawConnection.__init__ is deliberately not called).
    """

    def __init__(self, conn: IRawConnection, key: bytes, stats: PnetStats,
                 handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT) -> None:
        self._conn = conn
        self._key = key
        self._stats = stats
        self._timeout = handshake_timeout
        self._writer: XSalsa20 | None = None
        self._reader: XSalsa20 | None = None
        self._pending = b""  # bytes received before the nonce was complete
        self._checked = False
        self._head = b""  # decrypted bytes held back until the header is checked
        self._write_lock = trio.Lock()
        self.is_initiator = getattr(conn, "is_initiator", False)

    def __getattr__(self, name: str) -> Any:
        # Anything not defined here (transport metadata) is the raw connection's.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._conn, name)

    def get_transport_addresses(self) -> list[Multiaddr]:
        return self._conn.get_transport_addresses()

    def get_connection_type(self) -> ConnectionType:
        return self._conn.get_connection_type()

    async def _ensure_writer(self) -> None:
        if self._writer is None:
            nonce = os.urandom(NONCE_SIZE)
            self._writer = XSalsa20(self._key, nonce)
            await self._conn.write(nonce)

    async def write(self, data: bytes) -> None:
        async with self._write_lock:
            await self._ensure_writer()
            assert self._writer is not None
            await self._conn.write(self._writer.xor(data))

    async def _read_exactly(self, n: int, *, nonce: bool = False) -> bytes:
        buf = self._pending
        while len(buf) < n:
            chunk = await self._conn.read(max(n - len(buf), 4096))
            if not chunk:
                raise PnetError("connection closed during the pnet handshake")
            buf += chunk
            if nonce and buf[:len(MULTISTREAM_HEADER)] == MULTISTREAM_HEADER:
                # A cleartext multistream header where the nonce belongs: the peer is
                # not using a private network at all (odds of a random nonce: 2**-160).
                raise _NoPnet()
        self._pending = buf[n:]
        return buf[:n]

    async def _handshake(self) -> None:
        """Send our nonce, read theirs, and check the first decrypted bytes."""
        try:
            with trio.fail_after(self._timeout):
                async with self._write_lock:
                    await self._ensure_writer()
                nonce = await self._read_exactly(NONCE_SIZE, nonce=True)
                self._reader = XSalsa20(self._key, nonce)
                head = self._reader.xor(await self._read_exactly(len(MULTISTREAM_HEADER)))
        except trio.TooSlowError as exc:
            self._stats.reject("timeout")
            await self._abort()
            raise PnetError("pnet handshake timed out (is the peer in this private network?)"
                            ) from exc
        except _NoPnet:
            self._stats.reject("no_pnet")
            await self._abort()
            raise PnetError("peer is not using a private network") from None
        except PnetError:
            self._stats.reject("closed")
            await self._abort()
            raise
        if head != MULTISTREAM_HEADER:
            self._stats.reject("wrong_key")
            await self._abort()
            raise PnetError("peer is not in this private network (pre-shared keys differ)")
        self._stats.handshakes += 1
        self._checked = True
        self._head = head + (self._reader.xor(self._pending) if self._pending else b"")
        self._pending = b""

    async def _abort(self) -> None:
        with closing_quietly(log, "a refused connection"):
            await self._conn.close()

    async def read(self, n: int | None = None) -> bytes:
        if not self._checked:
            await self._handshake()
        if self._head:
            if n is None or n >= len(self._head):
                out, self._head = self._head, b""
            else:
                out, self._head = self._head[:n], self._head[n:]
            return out
        data = await self._conn.read(n)
        if not data:
            return b""
        assert self._reader is not None
        return self._reader.xor(data)

    async def close(self) -> None:
        await self._conn.close()

    def get_remote_address(self) -> tuple[str, int] | None:
        return self._conn.get_remote_address()
