"""Real libp2p hosts on loopback, in one process."""

import os
import time

import msgpack
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.security.secio import transport as secio
from multiaddr import Multiaddr

from bzzz.p2p.host import KAD_PROTOCOL
from bzzz.p2p.mesh import TOPIC_CAPABILITIES
from bzzz.testing.wait import wait_until

from .helpers import start_agent, start_node


async def _dial_with(sec_opt, target_addr):
    kp = create_new_key_pair()
    host = new_host(key_pair=kp, sec_opt=sec_opt, listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")])
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        with trio.fail_after(10):
            await host.connect(info_from_p2p_addr(Multiaddr(target_addr)))


@pytest.mark.parametrize("kind", ["plaintext", "secio"])
async def test_insecure_dialers_are_refused(tmp_path, nursery, kind):
    agent = await start_agent(nursery, tmp_path, "a")
    kp = create_new_key_pair()
    sec = ({PLAINTEXT_PROTOCOL_ID: InsecureTransport(kp)} if kind == "plaintext"
           else {secio.ID: secio.Transport(kp)})
    # the dial fails in the dialling host's nurseries: a group holding the swarm's refusal
    with pytest.raises(ExceptionGroup) as refused:
        await _dial_with(sec, agent.node.addrs()[0])
    assert refused.group_contains(SwarmException), refused.value
    assert agent.node.connected_peers() == set()


async def test_two_agents_see_each_other_and_status_has_contract_fields(tmp_path, nursery):
    a = await start_agent(nursery, tmp_path, "a")
    b = await start_agent(nursery, tmp_path, "b", bootstrap=[a.node.addrs()[0]])
    await wait_until(lambda: len(a.mesh.table) == 1 and len(b.mesh.table) == 1, 10, "mesh")
    st = a.status()
    assert {"node_id", "peer_id", "addrs", "capabilities", "version", "peers", "tasks",
            "log"} <= set(st)
    (peer,) = st["peers"]
    assert {"peer_id", "node_id", "addrs", "capabilities", "last_seen"} <= set(peer)
    assert peer["peer_id"] == b.peer_id and peer["node_id"] == "b"
    assert "cap-b" in peer["capabilities"]
    assert not any("/0.0.0.0/" in x for x in st["addrs"])


async def test_capability_change_is_announced_at_once(tmp_path, nursery):
    a = await start_agent(nursery, tmp_path, "a", announce_interval=30.0)
    b = await start_agent(nursery, tmp_path, "b", bootstrap=[a.node.addrs()[0]],
                          announce_interval=30.0)
    await wait_until(lambda: b.peer_id in a.mesh.table, 10, "b known to a")
    b.mesh.set_capabilities(["shell", "gpu"])
    await wait_until(lambda: a.mesh.table.get(b.peer_id).announcement.capabilities
                     == ("shell", "gpu"), 3, "changed capabilities")


async def _attacker_ready(attacker, agent):
    await attacker.subscribe(TOPIC_CAPABILITIES)
    await attacker.host.connect(info_from_p2p_addr(Multiaddr(agent.node.addrs()[0])))
    agent_id = ID.from_base58(agent.peer_id)
    await wait_until(lambda: agent_id in attacker.pubsub.peer_topics.get(TOPIC_CAPABILITIES, ()),
                     10, "agent subscription seen by attacker")


def _announcement(sender: str, **kw) -> dict:
    m = {"v": 1, "type": "capabilities", "from": sender, "ts": time.time(), "node_id": "evil",
         "capabilities": ["shell"], "addrs": [], "log_key": "", "load": [0, 1]}
    m.update(kw)
    return m


async def test_bad_announcements_are_dropped_and_counted(tmp_path, nursery):
    agent = await start_agent(nursery, tmp_path, "a")
    attacker = await start_node(nursery, tmp_path, "evil")
    attacker.on_message(TOPIC_CAPABILITIES, lambda signer, data: True)
    await _attacker_ready(attacker, agent)
    victim = "12D3KooWGzh3YXpM4h6wqH3M4LSFh8W6yR5QvVbVTzB3GQGv8M1c"
    cases = {
        "forged": msgpack.packb(_announcement(victim)),
        "stale": msgpack.packb(_announcement(attacker.peer_id, ts=time.time() - 3600)),
        "malformed": b"\xc1 definitely not msgpack",
        "oversized": msgpack.packb(_announcement(attacker.peer_id, pad="x" * 70_000)),
    }
    for reason, data in cases.items():
        await attacker.publish(TOPIC_CAPABILITIES, data)
        await wait_until(lambda reason=reason: agent.mesh.drops[reason] == 1, 5,
                         f"{reason} counted")
    assert attacker.peer_id not in agent.mesh.table and victim not in agent.mesh.table
    metrics = agent.render_metrics().decode()
    assert 'bzzz_pubsub_messages_dropped_total{reason="forged",topic="bzzz/capabilities/1"} 1.0' \
        in metrics
    # and a valid one from the same peer still gets through
    await attacker.publish(TOPIC_CAPABILITIES, msgpack.packb(_announcement(attacker.peer_id)))
    await wait_until(lambda: attacker.peer_id in agent.mesh.table, 5, "valid announcement")


async def test_dht_finds_peers_beyond_neighbours_on_bzzz_protocol(tmp_path, nursery):
    a = await start_node(nursery, tmp_path, "a")
    b = await start_node(nursery, tmp_path, "b")
    c = await start_node(nursery, tmp_path, "c")
    for node in (a, c):  # a - b - c: a and c only know b
        await node.host.connect(info_from_p2p_addr(Multiaddr(b.addrs()[0])))
    protocols = set(map(str, a.host.get_mux().get_protocols()))
    assert str(KAD_PROTOCOL) in protocols and "/ipfs/kad/1.0.0" not in protocols
    await wait_until(lambda: a.dht.routing_table.size() >= 1 and b.dht.routing_table.size() >= 2,
                     5, "routing tables fed from connections")
    found = await a.dht.peer_routing.find_closest_peers_network(a.identity.peer_id.to_bytes())
    assert ID.from_base58(c.peer_id) in found
    # and the discovery loops turn what the DHT returns into dial candidates
    def learnt_via_dht():
        entry = a.plan._peers.get(c.peer_id)
        return entry is not None and "dht" in entry.sources
    await wait_until(learnt_via_dht, 10, "a learns c from the DHT")
    await wait_until(lambda: c.peer_id in a.connected_peers(), 10, "a and c connected")


async def test_private_network(tmp_path, nursery):
    key, other = os.urandom(32), os.urandom(32)
    a = await start_node(nursery, tmp_path, "a", psk=key)
    b = await start_node(nursery, tmp_path, "b", psk=key)
    c = await start_node(nursery, tmp_path, "c", psk=other)
    plain = await start_node(nursery, tmp_path, "plain")
    await b.host.connect(info_from_p2p_addr(Multiaddr(a.addrs()[0])))
    assert a.peer_id in b.connected_peers()
    for outsider in (c, plain):
        start = trio.current_time()
        with pytest.raises(SwarmException):
            with trio.fail_after(6):
                await outsider.host.connect(info_from_p2p_addr(Multiaddr(a.addrs()[0])))
        assert trio.current_time() - start < 5.0
        assert outsider.peer_id not in a.connected_peers()
    await wait_until(lambda: a.pnet_stats.rejected_wrong_key >= 1
                     and a.pnet_stats.rejected_no_pnet >= 1, 6, "rejections counted by kind")


async def test_a_pubsub_rpc_that_does_not_parse_ends_that_stream_not_the_agent(tmp_path, nursery):
    """py-libp2p lets protobuf's DecodeError out of its pubsub reader, which ended the whole
    host: one peer's bytes stopped the daemon. Now the stream ends and it is counted."""
    from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
    from libp2p.utils.varint import encode_uvarint

    from bzzz.p2p.host import SECURITY_STATS

    agent = await start_agent(nursery, tmp_path, "a")
    attacker = await start_node(nursery, tmp_path, "evil")
    await attacker.host.connect(info_from_p2p_addr(Multiaddr(agent.node.addrs()[0])))
    before = SECURITY_STATS.pubsub_malformed_rpc
    garbage = b"\x0a\xff\xff\xff\xff\xff not protobuf"  # field 1, a length past the end
    for _ in range(3):
        stream = await attacker.host.new_stream(ID.from_base58(agent.peer_id),
                                                [PROTOCOL_ID_V11])
        await stream.write(encode_uvarint(len(garbage)) + garbage)
        await wait_until(lambda before=before: SECURITY_STATS.pubsub_malformed_rpc > before, 5,
                         "counted")
        before = SECURITY_STATS.pubsub_malformed_rpc
    assert b"bzzz_pubsub_malformed_rpcs_total" in agent.render_metrics()
    # the agent is still a working member of the mesh
    b = await start_agent(nursery, tmp_path, "b", bootstrap=[agent.node.addrs()[0]])
    await wait_until(lambda: b.peer_id in agent.mesh.table and agent.peer_id in b.mesh.table,
                     10, "a new peer meshes with the agent")


async def test_garbage_on_every_protocol_the_agent_speaks_leaves_it_running(tmp_path, nursery):
    """Whatever a peer sends on any protocol the agent handles (py-libp2p's and ours), the
    agent keeps running and keeps answering."""
    from libp2p.utils.varint import encode_uvarint

    agent = await start_agent(nursery, tmp_path, "a")
    attacker = await start_node(nursery, tmp_path, "evil")
    await attacker.host.connect(info_from_p2p_addr(Multiaddr(agent.node.addrs()[0])))
    protocols = sorted(str(p) for p in agent.node.host.get_mux().handlers)
    assert len(protocols) >= 5, protocols
    target = ID.from_base58(agent.peer_id)
    payloads = [b"\x0a\xff\xff\xff\xff\xff not protobuf", b"\xc1\xc1\xc1", b"\x00",
                b"\xff" * 64]
    for proto in protocols:
        for garbage in payloads:
            for framed in (encode_uvarint(len(garbage)) + garbage, garbage):
                try:
                    with trio.move_on_after(2):
                        await attacker.host.connect(
                            info_from_p2p_addr(Multiaddr(agent.node.addrs()[0])))
                        stream = await attacker.host.new_stream(target, [proto])
                        await stream.write(framed)
                        await stream.close()
                except Exception:  # noqa: BLE001 -- the agent may refuse us: that is fine
                    pass
    b = await start_agent(nursery, tmp_path, "b", bootstrap=[agent.node.addrs()[0]])
    await wait_until(lambda: b.peer_id in agent.mesh.table and agent.peer_id in b.mesh.table,
                     15, "a new peer meshes with the agent")
    assert agent.status()["peer_id"] == agent.peer_id


async def test_a_peer_whose_dial_failed_is_dialled_again_at_once_at_its_new_address(
        tmp_path, nursery):
    """py-libp2p refuses for a minute to dial a peer whose addresses all failed once; a
    peer that restarts on another port is reached at once all the same (our dial plan,
    not the library's cache, decides when to try again)."""
    from bzzz.identity import load_or_create
    from bzzz.testing.agents import free_port
    a = await start_node(nursery, tmp_path, "a")
    b_id = load_or_create(tmp_path / "b").peer_id.to_base58()
    a.offer_peer(b_id, [f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{b_id}"], "mdns")
    await wait_until(lambda: a.dial_failures >= 1, 10, "the dial to a closed port fails")
    b = await start_node(nursery, tmp_path, "b")  # the same identity, another port
    a.offer_peer(b_id, b.addrs(), "mdns")
    await wait_until(lambda: b_id in a.connected_peers(), 5, "a reaches b at its new address")
