"""Log replication between agents over libp2p on loopback (in-process hosts)."""

import trio

from bzzz.hyperlog.store import export
from bzzz.testing.wait import wait_until

from .helpers import start_agent


async def test_agents_follow_each_others_logs_and_relay_them(tmp_path):
    async with trio.open_nursery() as nursery:
        a = await start_agent(nursery, tmp_path, "a")
        b = await start_agent(nursery, tmp_path, "b", bootstrap=[
            f"{a.node.addrs()[0]}/p2p/{a.peer_id}"])
        for i in range(300):
            a.decisions.append({"type": "test", "i": i})
        key = a.decisions.log.key

        def b_has_all():
            rep = b.logsync.replicators.get(key)
            return rep is not None and rep.log is not None and \
                rep.log.head is not None and rep.log.head.length == a.decisions.log.length
        await wait_until(b_has_all, 20, "b follows a's log")
        status = b.status()
        assert status["log"]["replicas"][key.hex()] == a.decisions.log.length
        # c knows only b: it fetches a's log from b, not from its writer
        c = await start_agent(nursery, tmp_path, "c", replicate_logs=0, bootstrap=[
            f"{b.node.addrs()[0]}/p2p/{b.peer_id}"])
        await wait_until(lambda: b.peer_id in c.node.connected_peers(), 10, "c meets b")
        length = await c.logsync.sync_from(b.peer_id, key)
        assert length == a.decisions.log.length
        rep = c.logsync.replicators[key]
        assert export(rep.log)["tree_hash"] == export(a.decisions.log)["tree_hash"]
        nursery.cancel_scope.cancel()


async def test_a_stalled_follower_moves_again_within_two_announcement_intervals(tmp_path):
    """The writer's server loses every wake-up (its followers' long polls sleep through
    new entries): the follower sees the announced length run ahead of its copy, starts
    again on a new stream within two announcement intervals, and counts the stall."""
    interval = 1.0
    async with trio.open_nursery() as nursery:
        a = await start_agent(nursery, tmp_path, "a", announce_interval=interval)
        b = await start_agent(nursery, tmp_path, "b", announce_interval=interval, bootstrap=[
            f"{a.node.addrs()[0]}/p2p/{a.peer_id}"])
        key = a.decisions.log.key
        copied = lambda: b.logsync._copied(key)  # noqa: E731
        a.decisions.append({"type": "test", "i": 0})
        await wait_until(lambda: copied() == a.decisions.length, 20, "b follows a's log")
        # a following stream is now waiting for a head longer than what b has
        await wait_until(lambda: "following" in b.logsync.replicators[key].waiting_on, 10,
                         "b's long poll")
        a.logsync.server._wake = lambda key: None  # the lost wake-up
        for i in range(1, 6):
            a.decisions.append({"type": "test", "i": i})
        target = a.decisions.length
        await wait_until(lambda: b.mesh.announced_log_length(a.peer_id) >= target, 5,
                         "a announces its longer log")
        t0 = trio.current_time()
        await wait_until(lambda: copied() == target, 10, "b's copy moves again")
        took = trio.current_time() - t0
        print(f"announced longer -> moving again: {took:.2f} s")
        assert took <= 2 * interval, took
        assert b.logsync.stalls >= 1
        assert b.status()["log"]["follow_stalls"] >= 1
        assert "bzzz_log_follow_stalls_total 1.0" in b.metrics.render().decode()
        nursery.cancel_scope.cancel()
