"""Help requests: signature chains, hop limits, dedup, forgeries (the protocol core)."""

from itertools import pairwise

import msgpack
import pytest

from bzzz.help.keys import signer, verify_peer
from bzzz.help.messages import (BROADCAST, HelpDrop, HelpRequest, Hop, add_hop,
                                decode_handoff, decode_request, decode_response,
                                encode_handoff, encode_response, new_request)
from bzzz.help.router import HelpRouter, rank
from bzzz.p2p.capabilities import PeerView
from bzzz.identity import load_or_create

NOW = 1_800_000_000.0
TASK = {"repo": "o/r", "issue": 7, "title": "t", "needs": ["gpu"]}


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    root = tmp_path_factory.mktemp("ids")
    out = {}
    for name in "OABCDEFX":
        ident = load_or_create(root / name)
        out[name] = (ident.peer_id.to_base58(), signer(ident))
    return out


def pid(peers, n):
    return peers[n][0]


def chain(peers, names, req=None):
    """The request as it travels along ``names`` (O first)."""
    req = req or new_request(peers["O"][1], pid(peers, "O"), "node-o", TASK, "failed", NOW + 30,
                             1, NOW)
    for a, b in pairwise(names):
        req = add_hop(req, peers[a][1], pid(peers, a), pid(peers, b))
    return req


def receive(peers, req, me, sender, now=NOW):
    return decode_request(req.encode(), pid(peers, me), pid(peers, sender) if sender else None,
                          verify_peer, now)


def test_a_chain_of_up_to_three_forwards_is_accepted(peers):
    for names in ("OA", "OAB", "OABC", "OABCD"):
        req = chain(peers, list(names))
        got = receive(peers, req, names[-1], names[-2])
        assert got.forwards == len(names) - 2 and got.id == req.id
    with pytest.raises(HelpDrop) as e:
        receive(peers, chain(peers, list("OABCDE")), "E", "D")
    assert e.value.reason == "hop_limit"


def test_forged_lowered_rewritten_and_replayed_requests_are_dropped(peers):
    req = chain(peers, list("OABC"))
    # forged origin: the body changed after signing
    body = msgpack.unpackb(req.body_bytes)
    body["task"]["issue"] = 8
    forged = HelpRequest(msgpack.packb(body), req.sig, req.hops, body)
    with pytest.raises(HelpDrop, match="forged"):
        receive(peers, forged, "C", "B")
    # lowered hop count: B drops A's hop and signs as if it had it from O
    lowered = HelpRequest(req.body_bytes, req.sig, (req.hops[0],), req.body)
    lowered = add_hop(lowered, peers["B"][1], pid(peers, "B"), pid(peers, "C"))
    with pytest.raises(HelpDrop) as e:
        receive(peers, lowered, "C", "B")
    assert e.value.reason == "rewritten"
    # lowered by truncation: the chain no longer reaches us
    with pytest.raises(HelpDrop) as e:
        receive(peers, HelpRequest(req.body_bytes, req.sig, req.hops[:1], req.body), "C", "B")
    assert e.value.reason in ("misaddressed", "rewritten")
    # rewritten path: A's hop now claims to go to X
    hops = list(req.hops)
    hops[1] = Hop(hops[1].by, pid(peers, "X"), hops[1].sig)
    with pytest.raises(HelpDrop, match="forged|rewritten"):
        receive(peers, HelpRequest(req.body_bytes, req.sig, tuple(hops), req.body), "C", "B")
    # a hop signed by someone else
    bad = HelpRequest(req.body_bytes, req.sig, req.hops[:-1] + (
        Hop(pid(peers, "B"), pid(peers, "C"), req.hops[0].sig),), req.body)
    with pytest.raises(HelpDrop, match="forged"):
        receive(peers, bad, "C", "B")
    # from a peer that is not the last hop's sender
    with pytest.raises(HelpDrop, match="rewritten"):
        receive(peers, req, "C", "X")
    # replayed after its deadline
    with pytest.raises(HelpDrop, match="expired"):
        receive(peers, req, "C", "B", now=NOW + 31)
    # a loop through A again
    looped = chain(peers, list("OABA"))
    with pytest.raises(HelpDrop) as e:
        receive(peers, looped, "A", "B")
    assert e.value.reason == "loop"
    # garbage
    with pytest.raises(HelpDrop, match="malformed"):
        decode_request(b"\x93junk", pid(peers, "C"), None, verify_peer, NOW)
    with pytest.raises(HelpDrop, match="oversized"):
        decode_request(b"x" * 20000, pid(peers, "C"), None, verify_peer, NOW)


def test_the_gossip_broadcast_is_hop_zero(peers):
    req = new_request(peers["O"][1], pid(peers, "O"), "node-o", TASK, "failed", NOW + 30, 1, NOW)
    broadcast = add_hop(req, peers["O"][1], pid(peers, "O"), BROADCAST)
    got = receive(peers, broadcast, "B", None)
    assert got.forwards == 0
    onward = add_hop(got, peers["B"][1], pid(peers, "B"), pid(peers, "C"))
    assert receive(peers, onward, "C", "B").forwards == 1
    with pytest.raises(HelpDrop):  # only the origin's broadcast travels by gossip
        receive(peers, onward, "C", None)
    # and only the origin may publish it: another peer republishing it is refused
    assert decode_request(broadcast.encode(), pid(peers, "B"), None, verify_peer, NOW,
                          pid(peers, "O")).id == req.id
    with pytest.raises(HelpDrop) as e:
        decode_request(broadcast.encode(), pid(peers, "B"), None, verify_peer, NOW,
                       pid(peers, "X"))
    assert e.value.reason == "rewritten"


def test_router_offers_forwards_and_dedups(peers):
    req = chain(peers, list("OA"))
    cands = [PeerView(pid(peers, n), caps, 0, 1) for n, caps in
             (("B", ("shell",)), ("C", ("gpu",)), ("O", ("gpu",)), ("D", ("shell",)))]
    router = HelpRouter(pid(peers, "A"), verify_peer, fanout=2)
    v = router.receive(req.encode(), pid(peers, "O"), NOW, capabilities=["shell"], running=0,
                       max_tasks=1, candidates=cands)
    # A cannot help: forwards to the best candidates not on the path (C has a gpu first)
    assert v.action == "forward" and v.forward_to[0] == pid(peers, "C")
    assert pid(peers, "O") not in v.forward_to
    again = router.receive(req.encode(), pid(peers, "O"), NOW, capabilities=["shell"],
                           running=0, max_tasks=1, candidates=cands)
    assert again.action == "drop" and router.drops["duplicate"] == 1
    helper = HelpRouter(pid(peers, "A"), verify_peer)
    v = helper.receive(req.encode(), pid(peers, "O"), NOW, capabilities=["gpu"], running=0,
                       max_tasks=1, candidates=cands)
    assert v.action == "offer"
    busy = HelpRouter(pid(peers, "A"), verify_peer)
    v = busy.receive(req.encode(), pid(peers, "O"), NOW, capabilities=["gpu"], running=1,
                     max_tasks=1, candidates=[])
    assert v.action == "decline" and "busy" in v.reason
    last = HelpRouter(pid(peers, "D"), verify_peer)
    v = last.receive(chain(peers, list("OABCD")).encode(), pid(peers, "C"), NOW,
                     capabilities=["shell"], running=0, max_tasks=1, candidates=cands)
    assert v.action == "decline" and "hop limit" in v.reason


def test_responses_and_handoffs_are_signed(peers):
    data = encode_response(peers["C"][1], "rid", pid(peers, "C"), "node-c", True, "can do", NOW)
    body = decode_response(data, verify_peer)
    assert body["accept"] and body["helper"] == pid(peers, "C")
    tampered = msgpack.unpackb(data)
    inner = msgpack.unpackb(tampered["body"])
    inner["helper"] = pid(peers, "X")
    tampered["body"] = msgpack.packb(inner)
    with pytest.raises(HelpDrop, match="forged"):
        decode_response(msgpack.packb(tampered), verify_peer)
    h = encode_handoff(peers["O"][1], "rid", pid(peers, "O"), pid(peers, "C"), "o/r", 7, "ab" * 20,
                       NOW)
    assert decode_handoff(h, verify_peer)["issue"] == 7


def test_ranking_prefers_capable_free_fresh_peers():
    cands = [PeerView("p1", ("shell",), 0, 1), PeerView("p2", ("gpu",), 1, 1),
             PeerView("p3", ("gpu",), 0, 2, age=5), PeerView("p4", ("gpu",), 0, 2, age=1)]
    assert rank(["gpu"], cands, set(), 3) == ["p4", "p3", "p2"]
    assert rank(["gpu"], cands, {"p4"}, 1) == ["p3"]
