import os

import nacl.bindings
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.p2p.pnet import (MULTISTREAM_HEADER, PnetConnection, PnetError, PnetStats, XSalsa20,
                           format_psk, hsalsa20, parse_psk)


def test_xsalsa20_known_vector():
    # golang.org/x/crypto/salsa20 xSalsa20TestData
    c = XSalsa20(b"this is 32-byte key for xsalsa20", b"24-byte nonce for xsalsa")
    assert c.xor(b"Hello world!") == bytes.fromhex("002d4513843fc240c401e541")


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=24, max_size=24),
       st.binary(min_size=1, max_size=300))
def test_xsalsa20_matches_libsodium(key, nonce, msg):
    # secretbox = poly1305 tag || msg XOR keystream[32:]
    boxed = nacl.bindings.crypto_secretbox(msg, nonce, key)
    ours = XSalsa20(key, nonce).xor(b"\x00" * 32 + msg)[32:]
    assert ours == boxed[16:]


def test_hsalsa20_rejects_bad_sizes():
    with pytest.raises(ValueError):
        hsalsa20(b"k" * 31, b"n" * 16)


def test_psk_file_roundtrip_and_errors():
    key = os.urandom(32)
    assert parse_psk(format_psk(key).encode()) == key
    assert parse_psk(b"/key/swarm/psk/1.0.0/\r\n/base16/\r\n" + key.hex().encode()) == key
    with pytest.raises(PnetError, match="first line"):
        parse_psk(b"hello\n/base16/\n" + key.hex().encode())
    with pytest.raises(PnetError, match="32 bytes"):
        parse_psk(b"/key/swarm/psk/1.0.0/\n/base16/\nabcd")
    with pytest.raises(PnetError, match="not valid"):
        parse_psk(b"/key/swarm/psk/1.0.0/\n/base16/\n" + b"zz" * 32)
    with pytest.raises(PnetError, match="unsupported"):
        parse_psk(b"/key/swarm/psk/1.0.0/\n/bin/\n" + key.hex().encode())


class _Raw:
    """A raw connection over one end of an in-memory stream pair."""

    def __init__(self, stream):
        self.stream = stream
        self.closed = False

    async def write(self, data):
        await self.stream.send_all(data)

    async def read(self, n=None):
        return await self.stream.receive_some(n or 65536)

    async def close(self):
        self.closed = True
        await self.stream.aclose()

    def get_remote_address(self):
        return ("127.0.0.1", 1)


async def _talk(key_a, key_b, handshake_timeout=5.0):
    a, b = trio.testing.memory_stream_pair()
    sa, sb = PnetStats(), PnetStats()
    ca = PnetConnection(_Raw(a), key_a, sa, handshake_timeout)
    cb = PnetConnection(_Raw(b), key_b, sb, handshake_timeout)
    got = {}

    async def dialer():
        await ca.write(MULTISTREAM_HEADER + b"/noise\n")
        got["a"] = await ca.read(100)

    async def listener():
        got["b"] = await cb.read(100)
        await cb.write(MULTISTREAM_HEADER)

    async with trio.open_nursery() as n:
        n.start_soon(dialer)
        n.start_soon(listener)
    return got, sa, sb


async def test_same_key_talks():
    key = os.urandom(32)
    got, sa, sb = await _talk(key, key)
    assert got["b"].startswith(MULTISTREAM_HEADER) and got["b"].endswith(b"/noise\n")
    assert got["a"] == MULTISTREAM_HEADER
    assert sa.handshakes == sb.handshakes == 1


async def test_wrong_key_fails_fast_and_is_counted():
    start = trio.current_time()
    with pytest.raises(BaseExceptionGroup) as err:
        await _talk(os.urandom(32), os.urandom(32))
    assert err.group_contains(PnetError)
    assert trio.current_time() - start < 1.0


async def test_silent_peer_times_out():
    a, b = trio.testing.memory_stream_pair()
    stats = PnetStats()
    conn = PnetConnection(_Raw(a), os.urandom(32), stats, handshake_timeout=0.3)
    with pytest.raises(PnetError, match="timed out"):
        await conn.read(10)
    assert stats.rejected_timeout == 1
