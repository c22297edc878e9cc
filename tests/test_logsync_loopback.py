"""Log replication between agents over libp2p on loopback (in-process hosts)."""

import trio

from bzzz.hyperlog.store import export

from .helpers import start_agent


async def _until(predicate, timeout, what):
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


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
        await _until(b_has_all, 20, "b follows a's log")
        status = b.status()
        assert status["log"]["replicas"][key.hex()] == a.decisions.log.length
        # c knows only b: it fetches a's log from b, not from its writer
        c = await start_agent(nursery, tmp_path, "c", replicate_logs=0, bootstrap=[
            f"{b.node.addrs()[0]}/p2p/{b.peer_id}"])
        await _until(lambda: b.peer_id in c.node.connected_peers(), 10, "c meets b")
        length = await c.logsync.sync_from(b.peer_id, key)
        assert length == a.decisions.log.length
        rep = c.logsync.replicators[key]
        assert export(rep.log)["tree_hash"] == export(a.decisions.log)["tree_hash"]
        nursery.cancel_scope.cancel()
