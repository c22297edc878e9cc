"""Every patch of py-libp2p, by name, is in force (bzzz.p2p.patches)."""

import types

import pytest

import bzzz.p2p.host  # noqa: F401 -- building hosts applies the patches
from bzzz.p2p import patches
from bzzz.p2p.patches import (
    APPLIED,
    KAD_PROTOCOL,
    OUTBOUND_QUEUE,
    PATCHES,
    SECURITY_STATS,
    YAMUX_MAX_WINDOW,
    AppliedPatch,
    Libp2pPatchError,
    Patcher,
)

EVERY_PATCH = [
    "spec_compliant_pnet",
    "own_kad_protocol",
    "count_bad_signatures",
    "deeper_outbound_queue",
    "count_outbound_drops",
    "cache_own_peer_record",
    "verify_sender_record_once",
    "compact_seen_cache",
    "yamux_batched_window_updates",
    "yamux_window_cap",
    "dial_addresses_together",
    "pubsub_errors_end_stream",
]


def test_every_patch_is_listed_applied_and_says_why():
    assert [f.__name__ for f in PATCHES] == EVERY_PATCH
    assert list(APPLIED) == EVERY_PATCH
    for name, record in APPLIED.items():
        assert len(record.doc) > 80, f"{name}: the docstring says the defect and why"
        assert record.replacements, f"{name} replaced nothing"


@pytest.mark.parametrize("name", EVERY_PATCH)
def test_each_patch_is_in_force(name):
    for r in APPLIED[name].replacements:
        current = getattr(r.owner, r.attr)
        assert current is r.new, f"{name}: {r.where} is no longer ours"
        assert current is not r.original
        if callable(current):
            assert current.__module__.startswith("bzzz.p2p."), r.where


def test_applying_again_changes_nothing():
    before = {name: [(r.where, r.new) for r in rec.replacements]
              for name, rec in APPLIED.items()}
    patches.apply_all()
    assert {name: [(r.where, r.new) for r in rec.replacements]
            for name, rec in APPLIED.items()} == before


def test_a_moved_or_changed_target_is_a_clear_error():
    p = Patcher(AppliedPatch("some_patch", "doc"))
    module = types.SimpleNamespace(CONST=1, func=test_applying_again_changes_nothing)
    with pytest.raises(Libp2pPatchError, match="'some_patch'.*gone_attr does not exist"):
        p.replace(module, "gone_attr", new=0, expect=0)
    with pytest.raises(Libp2pPatchError, match="'some_patch'.*CONST is 1, expected 2"):
        p.replace(module, "CONST", new=0, expect=2)
    with pytest.raises(Libp2pPatchError, match="'some_patch'.*expected 'libp2p.x.func'"):
        p.replace(module, "func", new=None, expect="libp2p.x.func")
    assert module.CONST == 1 and p.record.replacements == []
    assert p.replace(module, "CONST", new=5, expect=1) == 1
    assert module.CONST == 5 and p.record.replacements[0].original == 1


def test_another_libp2p_version_is_refused():
    patches.check_version(patches.LIBP2P_VERSION)
    with pytest.raises(Libp2pPatchError, match="libp2p 0.9.0 is installed.*0.8.1"):
        patches.check_version("0.9.0")


# -- behaviour, where it is cheap to see -----------------------------------------------------


def test_kademlia_speaks_our_protocol_in_every_module():
    import libp2p.kad_dht.common as kad_common
    import libp2p.kad_dht.kad_dht as kad_main
    import libp2p.kad_dht.peer_routing as kad_routing
    import libp2p.kad_dht.provider_store as kad_providers
    import libp2p.kad_dht.value_store as kad_values

    for module in (kad_common, kad_main, kad_routing, kad_providers, kad_values):
        assert module.PROTOCOL_ID == KAD_PROTOCOL


def test_a_bad_signature_is_counted():
    import libp2p.pubsub.pubsub as pubsub_mod
    from libp2p.pubsub.pb import rpc_pb2

    before = SECURITY_STATS.pubsub_bad_signature
    assert pubsub_mod.signature_validator(rpc_pb2.Message()) is False  # no signature
    assert SECURITY_STATS.pubsub_bad_signature == before + 1


def test_outbound_queue_is_deeper_and_drops_are_counted():
    import libp2p.pubsub.pubsub as pubsub_mod
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    assert pubsub_mod.RpcQueue().max_size == OUTBOUND_QUEUE
    before = SECURITY_STATS.pubsub_outbound_dropped
    pubsub_mod.drop_rpc(ID(b"\x00\x04peer"), rpc_pb2.RPC())
    assert SECURITY_STATS.pubsub_outbound_dropped == before + 1


def test_seen_cache_yamux_and_dialling_settings():
    import libp2p.network.swarm as swarm_mod
    import libp2p.pubsub.pubsub as pubsub_mod
    import libp2p.stream_muxer.yamux.yamux as yamux_mod

    from bzzz.p2p.seencache import SeenCache

    assert pubsub_mod.LastSeenCache is SeenCache
    assert yamux_mod.MAX_WINDOW_SIZE == YAMUX_MAX_WINDOW
    assert isinstance(yamux_mod._yamux_release_on_read(), bool)
    assert swarm_mod._HAPPY_EYEBALLS_DELAY == 0.0


async def test_a_pubsub_rpc_that_does_not_parse_is_a_parse_error():
    import libp2p.pubsub.pubsub as pubsub_mod
    from libp2p.exceptions import ParseError

    garbage = b"\x0a\xff\xff\xff\xff\xff not protobuf"

    class Stream:
        muxed_conn = types.SimpleNamespace(peer_id="peer")
        data = bytes([len(garbage)]) + garbage

        async def read(self, n=None):
            out, self.data = self.data[:n], self.data[n:]
            return out

    pubsub = types.SimpleNamespace(manager=types.SimpleNamespace(is_running=True),
                                   max_inbound_rpc_size=1 << 20)
    before = SECURITY_STATS.pubsub_malformed_rpc
    with pytest.raises(ParseError):
        await pubsub_mod.Pubsub.continuously_read_stream(pubsub, Stream())
    assert SECURITY_STATS.pubsub_malformed_rpc == before + 1
