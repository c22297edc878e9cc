import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bzzz.p2p import envelope
from bzzz.p2p.envelope import Announcement, Departure, EnvelopeError

ME = "12D3KooWTest"
NOW = 1_000_000.0


def ann(**kw):
    base = dict(peer_id=ME, node_id="n1", ts=NOW, capabilities=("shell", "ollama:llama3"),
                addrs=("/ip4/10.0.0.1/tcp/4001/p2p/" + ME,), log_key="ab" * 32, load=(0, 1),
                seq=3)
    base.update(kw)
    return Announcement(**base)


def test_roundtrip_announcement_has_contract_fields():
    data = envelope.encode_announcement(ann())
    raw = msgpack.unpackb(data)
    assert {"v", "type", "from", "ts", "node_id", "capabilities", "addrs", "log_key",
            "load"} <= set(raw)
    assert envelope.parse(data, ME, NOW) == ann()


def test_departure_roundtrip():
    d = Departure(ME, "n1", NOW)
    assert envelope.parse(envelope.encode_departure(d), ME, NOW) == d


def test_forged_sender():
    with pytest.raises(EnvelopeError) as err:
        envelope.parse(envelope.encode_announcement(ann()), "12D3KooWOther", NOW)
    assert err.value.reason == "forged"


@pytest.mark.parametrize("ts", [NOW - 61, NOW + 31])
def test_stale_or_future(ts):
    with pytest.raises(EnvelopeError) as err:
        envelope.parse(envelope.encode_announcement(ann(ts=ts)), ME, NOW)
    assert err.value.reason == "stale"


def test_oversized():
    with pytest.raises(EnvelopeError) as err:
        envelope.parse(b"\x80" * (envelope.MAX_SIZE + 1), ME, NOW)
    assert err.value.reason == "oversized"


@pytest.mark.parametrize("mutate", [
    lambda m: m.pop("ts"),
    lambda m: m.update(v=2),
    lambda m: m.update(load=[1]),
    lambda m: m.update(load=[True, 1]),
    lambda m: m.update(capabilities="shell"),
    lambda m: m.update(capabilities=[1, 2]),
    lambda m: m.update(ts=float("nan")),
    lambda m: m.update(node_id=""),
    lambda m: m.update(addrs=["x"] * 100),
])
def test_malformed_fields(mutate):
    m = msgpack.unpackb(envelope.encode_announcement(ann()))
    mutate(m)
    with pytest.raises(EnvelopeError) as err:
        envelope.parse(msgpack.packb(m), ME, NOW)
    assert err.value.reason == "malformed"


def test_unknown_type_counted_separately():
    data = envelope.encode({"v": 1, "type": "gossip", "from": ME, "ts": NOW})
    with pytest.raises(EnvelopeError) as err:
        envelope.parse(data, ME, NOW)
    assert err.value.reason == "unknown_type"


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data):
    try:
        envelope.parse(data, ME, NOW)
    except EnvelopeError as exc:
        assert exc.reason in envelope.REASONS


@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c,
                                                                        max_size=5),
                    max_leaves=30))
def test_arbitrary_msgpack_never_crashes(obj):
    try:
        envelope.parse(msgpack.packb(obj), ME, NOW)
    except EnvelopeError as exc:
        assert exc.reason in envelope.REASONS
