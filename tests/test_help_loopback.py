"""Help requests between in-process agents on loopback: probing, forwarding, hostile senders."""

import time
from itertools import pairwise

import httpx
import trio

from bzzz.help.messages import add_hop, new_request
from bzzz.help.service import HELP_PROTOCOL
from bzzz.testing.wait import wait_until, wait_until_async
from libp2p.peer.id import ID

from .helpers import start_agent


async def probe(agent, needs, wait=2.0):
    host, port = agent.config.api_host_port
    async with httpx.AsyncClient() as client:
        r = await client.post(f"http://{host}:{port}/api/v1/help/probe",
                              json={"needs": needs, "wait": wait}, timeout=20)
    assert r.status_code == 200, r.text
    return r.json()


LINE = dict(dial_discovered=False, help_scope="connected", help_broadcast=False, mdns=False)


async def start_line(nursery, tmp_path, caps):
    agents = []
    for i, extra in enumerate(caps):
        boot = [f"{agents[-1].node.addrs()[0]}/p2p/{agents[-1].peer_id}"] if agents else []
        agents.append(await start_agent(nursery, tmp_path, f"n{i}", bootstrap=boot,
                                        capabilities=["shell", *extra], **LINE))
    for a, b in pairwise(agents):
        await wait_until(lambda a=a, b=b: b.peer_id in a.node.connected_peers() and
                         b.peer_id in {e.announcement.peer_id for e in a.mesh.table.entries()},
                         15, "neighbours meet")
    return agents


async def test_a_helper_two_forwards_away_answers_the_origin(tmp_path):
    async with trio.open_nursery() as nursery:
        line = await start_line(nursery, tmp_path, [[], [], [], ["cap_x"]])
        assert line[3].peer_id not in line[0].node.connected_peers()
        got = await probe(line[0], ["cap_x"])
        assert [o["helper"] for o in got["offers"]] == [line[3].peer_id]
        assert got["sent_to"] == [line[1].peer_id]
        counts = [a.help.router.counts for a in line]
        assert counts[1]["forwarded"] == 1 and counts[2]["forwarded"] == 1
        assert counts[3]["offered"] == 1
        # nobody has it: the request dies out, each node handling it once
        got = await probe(line[0], ["cap_nobody"], wait=1.0)
        assert got["offers"] == []
        nursery.cancel_scope.cancel()


async def test_forged_replayed_and_rewritten_requests_are_dropped_and_counted(tmp_path):
    async with trio.open_nursery() as nursery:
        a = await start_agent(nursery, tmp_path, "a", capabilities=["shell", "cap_x"])
        evil = await start_agent(nursery, tmp_path, "evil", bootstrap=[
            f"{a.node.addrs()[0]}/p2p/{a.peer_id}"])
        await wait_until(lambda: a.peer_id in evil.node.connected_peers(), 10, "connected")
        sign = evil.help.sign

        async def send(data):
            stream = await evil.node.host.new_stream(ID.from_base58(a.peer_id), [HELP_PROTOCOL])
            await stream.write(len(data).to_bytes(4, "big") + data)
            await stream.close()

        task = {"repo": "o/r", "issue": 1, "title": "t", "needs": ["cap_x"]}
        req = new_request(sign, evil.peer_id, "evil", task, "failed", time.time() + 30, 1,
                          time.time())
        # claims to come from a's own id as origin, signed by evil: forged
        forged = new_request(sign, a.peer_id, "a", task, "failed", time.time() + 30, 1, time.time())
        await send(add_hop(forged, sign, evil.peer_id, a.peer_id).encode())
        # expired (a replay of an old request)
        old = new_request(sign, evil.peer_id, "evil", task, "x", time.time() - 1, 1,
                          time.time() - 60)
        await send(add_hop(old, sign, evil.peer_id, a.peer_id).encode())
        # addressed to someone else (a path rewritten on the way)
        await send(add_hop(req, sign, evil.peer_id, evil.peer_id).encode())
        # garbage and an oversized message
        await send(b"\x00\x01garbage")
        await send(b"x" * 20000)
        # a valid one, twice: handled once
        good = add_hop(req, sign, evil.peer_id, a.peer_id).encode()
        await send(good)
        await send(good)
        drops = a.help.router.drops
        await wait_until(lambda: sum(drops.values()) >= 6 and a.help.router.counts["offered"] == 1,
                         10, "all handled")
        assert drops["forged"] == 1 and drops["expired"] == 1
        assert drops["misaddressed"] + drops["rewritten"] >= 1
        assert drops["malformed"] >= 1 and drops["oversized"] == 1 and drops["duplicate"] == 1
        metrics = a.render_metrics().decode()
        assert 'bzzz_help_dropped_total{reason="forged"} 1.0' in metrics
        nursery.cancel_scope.cancel()


async def test_junk_help_requests_are_counted_not_logged_and_never_relayed(tmp_path):
    """A peer sends malformed help requests by gossip and by stream: the victim counts each
    one by reason and writes nothing to its log (which its followers replicate), and its
    topic validator refuses them, so a third peer connected to the victim never sees them."""
    import msgpack

    from bzzz.p2p.mesh import TOPIC_HELP

    async with trio.open_nursery() as nursery:
        victim = await start_agent(nursery, tmp_path, "victim", **LINE)
        boot = [f"{victim.node.addrs()[0]}/p2p/{victim.peer_id}"]
        evil = await start_agent(nursery, tmp_path, "evil", bootstrap=boot, **LINE)
        third = await start_agent(nursery, tmp_path, "third", bootstrap=boot, **LINE)
        seen_by_third = []

        def record(signer, data):
            seen_by_third.append(data)
            return third.help._on_gossip(signer, data)
        third.node.on_message(TOPIC_HELP, record)
        # evil publishes what its own validator would refuse
        evil.node.pubsub.remove_topic_validator(TOPIC_HELP)

        def in_mesh(node, peer):
            return any(p.to_base58() == peer for p in node.gossipsub.mesh.get(TOPIC_HELP, ()))
        await wait_until(lambda: in_mesh(victim.node, third.peer_id) and
                         in_mesh(victim.node, evil.peer_id) and in_mesh(evil.node, victim.peer_id),
                         15, "the help topic's mesh")
        assert third.peer_id not in evil.node.connected_peers()

        sign, now = evil.help.sign, time.time()
        task = {"repo": "o/r", "issue": 1, "title": "t", "needs": []}
        req = new_request(sign, evil.peer_id, "evil", task, "x", now + 30, 1, now)
        expired = new_request(sign, evil.peer_id, "evil", task, "x", now - 1, 1, now - 60)
        claims_third = new_request(sign, third.peer_id, "third", task, "x", now + 30, 1, now)

        def junk(to):
            return [b"\x00\x01garbage",
                    msgpack.packb({"v": 1, "type": "help_request", "body": b"x", "sig": b"y",
                                   "hops": []}),
                    add_hop(claims_third, sign, evil.peer_id, to).encode(),   # forged
                    add_hop(expired, sign, evil.peer_id, to).encode(),        # expired
                    add_hop(req, sign, evil.peer_id, third.peer_id).encode()]  # misaddressed
        gossip_junk = junk("*") + [add_hop(req, sign, evil.peer_id, victim.peer_id).encode()]
        stream_junk = junk(victim.peer_id)

        host, port = victim.config.api_host_port
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            async def log_length():
                r = await client.get("/api/v1/status")
                return r.json()["log"]["length"]

            async def dropped():
                text = (await client.get("/metrics")).text
                return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                           if line.startswith("bzzz_help_dropped_total{"))

            before_log, before_drops = await log_length(), await dropped()
            for data in gossip_junk:
                await evil.node.pubsub.publish(TOPIC_HELP, data)
            for data in stream_junk:
                stream = await evil.node.host.new_stream(ID.from_base58(victim.peer_id),
                                                         [HELP_PROTOCOL])
                await stream.write(len(data).to_bytes(4, "big") + data)
                await stream.close()
            n = len(gossip_junk) + len(stream_junk)
            async def all_dropped():
                return await dropped() >= before_drops + n
            await wait_until_async(all_dropped, 10, "every junk message dropped", interval=0.05)
            assert await dropped() == before_drops + n
            assert await log_length() == before_log
            assert victim.decisions.length == before_log

            # a valid broadcast afterwards does travel through the victim to the third peer
            # (over the same connection, after the junk had it been relayed)
            good = add_hop(req, sign, evil.peer_id, "*").encode()
            await evil.node.pubsub.publish(TOPIC_HELP, good)
            await wait_until(lambda: good in seen_by_third, 10, "the valid broadcast relayed")
            assert seen_by_third == [good]
        nursery.cancel_scope.cancel()
