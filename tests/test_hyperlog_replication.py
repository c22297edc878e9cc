"""hyperlog replication, transport aside: verified copies, resume, relays, hostile peers,
conflicts."""

import os

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bzzz.hyperlog.replicate import (Channel, ChannelClosed, LogConflict, LogServer,
                                     PeerMisbehaved, Replicator)
from bzzz.hyperlog.store import Hyperlog, export, verify_dir
from bzzz.testing.wait import wait_until

SEED = bytes(range(32))


def channel_pair():
    a, b = trio.testing.memory_stream_pair()
    return Channel(a.receive_some, a.send_all), Channel(b.receive_some, b.send_all), (a, b)


async def replicate_from(server, rep, *, follow=False, tamper=None, stop_after=None):
    """Run ``server`` on one end and ``rep.sync`` on the other; ``tamper`` may rewrite the
    server's answers; ``stop_after`` ends the stream after that many answers."""
    client, serving, streams = channel_pair()
    answers = 0

    async def serve():
        nonlocal answers
        while True:
            try:
                req = await serving.recv()
            except ChannelClosed:
                return
            async for msg in server.respond(req):
                if stop_after is not None and answers >= stop_after:
                    await streams[1].aclose()
                    return
                if tamper is not None:
                    msg = tamper(msg)
                answers += 1
                await serving.send(msg)

    outcome = {}

    async def read():
        try:
            outcome["value"] = await rep.sync(client, follow=follow)
        except Exception as exc:  # re-raised below, outside the nursery's group
            outcome["error"] = exc
        finally:
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        nursery.start_soon(read)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def writer(path, batches, seed=SEED):
    log = Hyperlog.create(path, seed)
    for b in batches:
        log.append(b)
    return log


@given(st.lists(st.lists(st.binary(max_size=300), min_size=1, max_size=20), min_size=1,
                max_size=12), st.integers(1, 5))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_logs_replicate_to_identical_logs(tmp_path_factory, batches, rounds):
    tmp = tmp_path_factory.mktemp("rep")
    w = writer(tmp / "w", [])
    server = LogServer()
    server.add(w)
    rep = Replicator(w.key, tmp / "r")
    step = max(1, len(batches) // rounds)
    for i in range(0, len(batches), step):  # the writer grows between rounds
        for b in batches[i:i + step]:
            w.append(b)
        trio.run(replicate_from, server, rep)
    assert rep.log.length == w.length
    assert export(rep.log) == export(w)
    rep.close()
    w.close()
    assert verify_dir(tmp / "r").ok


async def test_a_reader_fetches_a_log_from_a_relay_and_resumes(tmp_path):
    w = writer(tmp_path / "w", [[os.urandom(100) for _ in range(1000)] for _ in range(20)])
    origin = LogServer()
    origin.add(w)
    relay = Replicator(w.key, tmp_path / "b")
    await replicate_from(origin, relay)
    relay_server = LogServer()
    relay_server.add(relay.log)
    # the reader's stream breaks after a few answers; the next one resumes
    rep = Replicator(w.key, tmp_path / "c")
    with pytest.raises(ChannelClosed):
        await replicate_from(relay_server, rep, stop_after=3)
    got_before = rep.bytes
    assert 0 < rep.log.length < 20000
    await replicate_from(relay_server, rep)
    assert rep.log.length == 20000 and export(rep.log)["tree_hash"] == export(w)["tree_hash"]
    assert rep.bytes - got_before < 20000 * 100  # it did not start again
    rep.close()
    assert verify_dir(tmp_path / "c").ok
    # across a restart, what was sealed on the way stays: a new reader process resumes
    fresh = Replicator(w.key, tmp_path / "d")
    with pytest.raises(ChannelClosed):
        await replicate_from(relay_server, fresh, stop_after=5)
    sealed = fresh.log.head.length
    assert 0 < sealed < 20000
    fresh.close()
    again = Replicator(w.key, tmp_path / "d")
    await replicate_from(relay_server, again)
    assert again.log.length == 20000 and again.bytes <= (20000 - sealed) * 100
    again.close()


def _flip(msg, field):
    msg = dict(msg)
    if field in ("blocks",) and msg.get("blocks"):
        blocks = list(msg["blocks"])
        b = bytearray(blocks[0] or b"\x00")
        b[0] ^= 1
        blocks[0] = bytes(b)
        msg["blocks"] = blocks
    elif field in ("proof", "roots") and msg.get(field):
        nodes = [list(n) for n in msg[field]]
        h = bytearray(nodes[-1][2])
        h[5] ^= 1
        nodes[-1][2] = bytes(h)
        msg[field] = nodes
    elif field in ("signature", "tree_hash") and msg.get(field):
        v = bytearray(msg[field])
        v[3] ^= 1
        msg[field] = bytes(v)
    elif field == "length" and "length" in msg:
        msg["length"] += 1
    elif field == "public_key" and "public_key" in msg:
        msg["public_key"] = os.urandom(32)
    return msg


@pytest.mark.parametrize("field", ["blocks", "proof", "roots", "signature", "tree_hash",
                                   "length", "public_key"])
async def test_any_tampering_is_caught_and_nothing_is_stored(tmp_path, field):
    w = writer(tmp_path / "w", [[b"a" * 10, b"b" * 20, b"c"]])
    server = LogServer()
    server.add(w)
    rep = Replicator(w.key, tmp_path / "r")
    await replicate_from(server, rep)  # an honest start: 3 blocks
    w.append([b"d" * 7] * 10)  # 13: the next range needs proof nodes
    touched = []

    def tamper(msg):
        changed = _flip(msg, field)
        if changed != msg:
            touched.append(msg["op"])
        return changed

    with pytest.raises(PeerMisbehaved):
        await replicate_from(server, rep, tamper=tamper)
    assert touched
    assert rep.log.head.length == 3  # nothing new sealed
    rep.close()
    with Hyperlog.open(tmp_path / "r") as again:
        assert again.length == 3


async def test_upgrade_proofs_are_checked(tmp_path):
    w = writer(tmp_path / "w", [[b"x"] * 5])
    server = LogServer()
    server.add(w)
    rep = Replicator(w.key, tmp_path / "r")
    await replicate_from(server, rep)
    w.append([b"y"] * 9)
    with pytest.raises(PeerMisbehaved, match="upgrade"):
        await replicate_from(server, rep, tamper=lambda m: _flip(m, "proof")
                             if m["op"] == "upgrade" else m)
    assert rep.log.length == 5


async def test_oversized_and_malformed_messages_are_refused(tmp_path):
    client, _, (a, b) = channel_pair()
    await b.send_all((10 * 1024 * 1024).to_bytes(4, "big"))
    with pytest.raises(PeerMisbehaved, match="oversized"):
        await client.recv()
    client, _, (a, b) = channel_pair()
    await b.send_all((3).to_bytes(4, "big") + b"\xc1\xc1\xc1")
    with pytest.raises(PeerMisbehaved, match="malformed"):
        await client.recv()


async def test_a_key_used_twice_freezes_the_log_in_every_replica(tmp_path):
    honest = writer(tmp_path / "w1", [[b"same"] * 3, [b"history one"]])
    forked = writer(tmp_path / "w2", [[b"same"] * 3, [b"history two"]])  # same key!
    assert honest.key == forked.key and honest.length == forked.length
    s1, s2 = LogServer(), LogServer()
    s1.add(honest)
    s2.add(forked)
    r = Replicator(honest.key, tmp_path / "r")
    await replicate_from(s1, r)
    with pytest.raises(LogConflict):
        await replicate_from(s2, r)
    assert (tmp_path / "r" / "conflict").exists()
    # the replica now serves the evidence, and whoever asks freezes too
    relay = LogServer()
    relay.add(r.log)
    relay.freeze(honest.key, r.conflict)
    r2 = Replicator(honest.key, tmp_path / "r2")
    with pytest.raises(LogConflict):
        await replicate_from(relay, r2)
    # and stays frozen after a restart
    again = Replicator(honest.key, tmp_path / "r2")
    assert again.conflict is not None
    with pytest.raises(LogConflict):
        await replicate_from(s1, again)
    # a forged "conflict" (not validly signed) is a misbehaving peer, not a freeze
    fake = r.conflict.to_msg()
    fake["short"] = [fake["short"][0], fake["short"][1], fake["short"][2], bytes(64)]
    liar = LogServer()
    liar.add(honest)
    r3 = Replicator(honest.key, tmp_path / "r3")
    with pytest.raises(PeerMisbehaved):
        await replicate_from(liar, r3, tamper=lambda m: fake if m["op"] == "head" else m)
    assert not (tmp_path / "r3" / "conflict").exists()


async def test_a_shorter_contradicting_head_is_a_conflict(tmp_path):
    honest = writer(tmp_path / "w1", [[b"a"], [b"b"], [b"c"]])
    forked = writer(tmp_path / "w2", [[b"a"], [b"B"]])
    s1, s2 = LogServer(), LogServer()
    s1.add(honest)
    s2.add(forked)
    r = Replicator(honest.key, tmp_path / "r")
    await replicate_from(s1, r)
    with pytest.raises(LogConflict):
        await replicate_from(s2, r)
    assert r.conflict.short.length == 2 and r.conflict.long.length == 3


async def test_following_a_growing_log(tmp_path):
    w = writer(tmp_path / "w", [[b"first"]])
    server = LogServer()
    server.add(w)
    rep = Replicator(w.key, tmp_path / "r")
    seen = []
    rep.on_progress = lambda p: seen.append(p.length)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: replicate_from(server, rep, follow=True))
        for n in range(2, 6):
            w.append([b"more %d" % n])
            await wait_until(lambda n=n: rep.log is not None and rep.log.length >= n, 5,
                             f"entry {n} copied", interval=0.01)
        nursery.cancel_scope.cancel()
    assert rep.log.length == 5 and rep.log.head.length == 5


@given(st.data())
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_random_mutation_of_any_answer_is_rejected(tmp_path_factory, data):
    """Any changed byte in a head, root, proof node, block or signature the peer sends is
    caught before anything is stored."""
    tmp = tmp_path_factory.mktemp("mut")
    w = writer(tmp / "w", [[b"a" * 10, b"bb", b"c" * 33], [b"d" * 7] * 9])
    server = LogServer()
    server.add(w)
    rep = Replicator(w.key, tmp / "r")
    trio.run(replicate_from, server, rep)
    w.append([b"e" * 5] * 11)
    picked = data.draw(st.sampled_from(["blocks", "proof", "roots", "signature", "tree_hash",
                                        "upgrade"]))
    salt = data.draw(st.integers(0, 10**6))

    def mutate(msg):
        msg = dict(msg)
        field = "proof" if picked == "upgrade" else picked
        if picked == "upgrade" and msg["op"] != "upgrade":
            return msg
        value = msg.get(field)
        if isinstance(value, bytes) and value:
            b = bytearray(value)
            b[salt % len(b)] ^= 1 + salt % 255
            msg[field] = bytes(b)
        elif isinstance(value, list) and value:
            items = [list(x) if isinstance(x, (list, tuple)) else x for x in value]
            k = salt % len(items)
            if isinstance(items[k], bytes):
                b = bytearray(items[k] or b"\x00")
                b[salt % len(b)] ^= 1 + salt % 255
                items[k] = bytes(b)
            else:
                b = bytearray(items[k][2])
                b[salt % 32] ^= 1 + salt % 255
                items[k][2] = bytes(b)
            msg[field] = items
        return msg

    touched = []

    def tamper(msg):
        out = mutate(msg)
        if out != msg:
            touched.append(msg["op"])
        return out

    try:
        trio.run(lambda: replicate_from(server, rep, tamper=tamper))
    except PeerMisbehaved:
        pass
    else:
        assert not touched, f"a mutated {touched} answer was accepted"
    assert rep.log.head.length in (3 + 9, 3 + 9 + 11)
    if touched:
        assert rep.log.head.length == 12  # nothing new sealed
    rep.close()
    w.close()


async def test_a_replica_wakes_its_own_followers_at_once(tmp_path, autojump_clock):
    """A -> B -> C: B's replica serves C. B's growth (ingest) wakes C's follow at once, as
    an author's append does: no second-long poll anywhere on the way (the autojump clock
    would let a poll pass instantly, so the test counts clock time instead)."""
    w = writer(tmp_path / "w", [[b"first"]])
    server_a = LogServer()
    server_a.add(w)
    b = Replicator(w.key, tmp_path / "b")
    await replicate_from(server_a, b)  # b holds a replica now
    server_b = LogServer()
    server_b.add(b.log)
    c = Replicator(w.key, tmp_path / "c")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: replicate_from(server_a, b, follow=True))
        nursery.start_soon(lambda: replicate_from(server_b, c, follow=True))
        await wait_until(lambda: c.log is not None and c.log.length >= 1, 5, "c's replica",
                         interval=0.001)
        for n in range(2, 6):
            start = trio.current_time()
            w.append([b"more %d" % n])
            await wait_until(lambda n=n: c.log.length >= n, 5, f"entry {n} at c",
                             interval=0.001)
            assert trio.current_time() - start < 0.5  # not a 1 s poll
        nursery.cancel_scope.cancel()


def _silent_channel():
    """A stream whose peer never says anything (its connection died without closing)."""
    async def read(n: int) -> bytes:
        await trio.sleep_forever()

    async def write(data: bytes) -> None:
        pass

    return Channel(read, write)


async def test_a_reader_gives_up_on_a_silent_stream(tmp_path, autojump_clock):
    from bzzz.hyperlog.replicate import REPLY_TIMEOUT, ChannelTimeout
    rep = Replicator(os.urandom(32), tmp_path / "copy")
    t0 = trio.current_time()
    with pytest.raises(ChannelTimeout):
        await rep.sync(_silent_channel(), follow=True)
    assert trio.current_time() - t0 == pytest.approx(REPLY_TIMEOUT)
    assert rep.waiting_on == "the answer to head"


async def test_a_server_gives_up_on_a_silent_reader(autojump_clock):
    from bzzz.hyperlog.replicate import SERVE_IDLE
    t0 = trio.current_time()
    await LogServer().serve(_silent_channel())  # returns instead of waiting for ever
    assert trio.current_time() - t0 == pytest.approx(SERVE_IDLE)
