"""The container sandbox against a real engine: podman's Docker-compatible service, started
for the session by ``bzzz.testing.podman`` (its own storage and configuration in a temporary
directory), with a busybox image made from the host's busybox-static. Tasks are run the way
a task would try to get out; the sandbox is run directly (no Guardian in front)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from bzzz.exec.container import Engine
from bzzz.exec.sandbox import ContainerSandbox, Limits, SandboxError, open_sandbox
from bzzz.exec.shell import run_shell, task_identity
from bzzz.gateway.allow import Allowlist
from bzzz.gateway.proxy import Gateway
from bzzz.testing import image as image_helper
from bzzz.testing import podman as podman_helper
from bzzz.testing.procs import gone, kill_all, unique_seconds, with_arg
from bzzz.testing.wait import wait_until

from .conftest import require
from .helpers import read_request_head

ROOT = Path(__file__).resolve().parent.parent
ENV = {"PATH": "/bin", "LANG": "C.UTF-8"}
TOKEN = "ghp_TOKEN-secret-9e4a"
KEY = "DATA-key-secret-1d3b"


@pytest.fixture(scope="session")
def podman():
    ok, reason = podman_helper.available()
    require(ok, reason)
    with podman_helper.PodmanService() as service:
        yield service


@pytest.fixture
def node(request) -> str:
    return f"test-{os.getpid()}-{request.node.name[:40]}"


@pytest.fixture
def place(workdir):
    base = Path(workdir)
    token = base / "token"
    token.write_text(TOKEN)
    (base / "data").mkdir()
    (base / "data" / "identity.key").write_text(KEY)
    return base


async def make_box(podman, node, place, **kw) -> ContainerSandbox:
    args = dict(node_id=node, hidden=[place / "token", place / "data"], state_dir=place / "state",
                docker_host=podman.docker_host, default_image=podman.image, network="none",
                limits=Limits(memory="256m", cpus=1.0, pids=64), user=task_identity(None)) | kw
    box = await open_sandbox("container", **args)
    assert box.kind == "container"
    return box


@pytest.fixture
async def box(podman, node, place):
    sandbox = await make_box(podman, node, place)
    yield sandbox
    await sandbox.aclose()


async def sh(box, script: str, ws: Path, **kw):
    opts = {"timeout": 30, "max_output": 64 * 1024, "kill_grace": 1, "task_id": "t1"} | kw
    return await box.run(["sh", "-c", script], ws, dict(ENV), **opts)


def left(podman, node) -> list[str]:
    return podman.containers(f"bzzz.node={node}")


# -- secrets ---------------------------------------------------------------------------------

async def test_secrets_are_not_there(box, place, podman, node):
    ws = place / "work" / "t1"
    r = await sh(box, f"cat {place}/token; cat {place}/data/identity.key; ls -A {place}; "
                      f"echo \"ls:$(ls -A {place} | tr '\\n' ' ')\"", ws)
    assert r.status == "succeeded", r.output
    assert TOKEN not in r.output and KEY not in r.output
    assert "ls:work \n" in r.output  # of the agent's directories only the workspace's path
    assert left(podman, node) == []  # removed after success too


async def test_a_secret_inside_the_workspace_is_masked(podman, node, place):
    ws = place / "work" / "t1"
    (ws / ".data").mkdir(parents=True)
    (ws / ".data" / "k").write_text(KEY)
    (ws / ".token").write_text(TOKEN)
    box = await make_box(podman, node, place, hidden=[ws / ".data", ws / ".token"])
    try:
        r = await sh(box, "cat .token; cat .data/k; echo x > .data/evil || echo no-write; "
                          "echo x > .token || echo no-write2", ws)
    finally:
        await box.aclose()
    assert TOKEN not in r.output and KEY not in r.output
    assert "no-write" in r.output  # (a write to the masked file goes to /dev/null)
    assert (ws / ".token").read_text() == TOKEN and not (ws / ".data" / "evil").exists()


async def test_no_agent_environment(box, place, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    r = await sh(box, "cat /proc/1/environ; echo; cat /proc/$PPID/environ; echo; env", place / "w")
    assert r.status == "succeeded"
    assert TOKEN not in r.output and "GITHUB_TOKEN" not in r.output and "LANG=C.UTF-8" in r.output


async def test_read_only_except_the_workspace(box, place):
    ws = place / "w"
    r = await sh(box, "id -u; echo x > mine && echo ws-ok; echo x > /etc/evil || echo ro-root; "
                      "echo x > /tmp/t && echo tmp-ok", ws)
    uid = str(os.geteuid() if os.geteuid() else 65534)
    assert r.output.split()[0] == uid and "ws-ok" in r.output
    assert "ro-root" in r.output and "tmp-ok" in r.output
    assert (ws / "mine").stat().st_uid == int(uid)


# -- the agent is out of reach ---------------------------------------------------------------

async def test_kill_parent_and_everything_hits_only_the_container(box, place):
    tag = unique_seconds()
    bystander = await trio.lowlevel.open_process(["sleep", tag])
    try:
        r = await sh(box, "kill -9 -1; kill -9 $PPID; echo still", place / "w")
        os.kill(os.getpid(), 0)
        assert r.status in ("succeeded", "failed")
        assert bystander.poll() is None, "a process outside the container was killed"
    finally:
        bystander.kill()
        await bystander.wait()


async def test_nothing_outlives_the_task(box, place, podman, node):
    tags = [unique_seconds() for _ in range(3)]
    r = await sh(box, f"rm -f n.ok s.ok d.ok; nohup sh -c 'touch n.ok; exec sleep {tags[0]}' >/dev/null 2>&1 & "
                      f"setsid sh -c 'touch s.ok; exec sleep {tags[1]}' >/dev/null 2>&1 & "
                      f"(sh -c 'touch d.ok; exec sleep {tags[2]}' >/dev/null 2>&1 &); "
                      "while [ ! -e n.ok ] || [ ! -e s.ok ] || [ ! -e d.ok ]; do sleep 0.01; done; "
                      "echo started; exit 0", place / "w")
    try:
        assert r.status == "succeeded" and "started" in r.output
        assert left(podman, node) == []
        for tag in tags:
            assert await gone(tag), f"sleep {tag} outlived its task"
    finally:
        for tag in tags:
            kill_all(tag)


async def test_timeout_kills_and_removes(box, place, podman, node):
    tags = [unique_seconds() for _ in range(2)]
    start = trio.current_time()
    r = await sh(box, f"trap '' TERM; setsid sleep {tags[0]} & sleep {tags[1]}", place / "w",
                 timeout=1, kill_grace=1)
    assert r.status == "timeout" and trio.current_time() - start < 15
    assert left(podman, node) == []
    for tag in tags:
        assert await gone(tag)


async def test_cancellation_kills_and_removes(box, place, podman, node):
    tags = [unique_seconds() for _ in range(2)]
    results = []
    async with trio.open_nursery() as nursery:
        async def run():
            results.append(await sh(box, f"setsid sleep {tags[0]} & sleep {tags[1]}", place / "w"))
        nursery.start_soon(run)
        await wait_until(lambda: all(with_arg(t) for t in tags), 15, "both sleeps running")
        nursery.cancel_scope.cancel()
    assert results == []
    assert left(podman, node) == []
    for tag in tags:
        assert await gone(tag)


async def test_a_killed_agent_leaves_a_container_that_reap_removes(podman, node, place):
    tag = unique_seconds()
    child = await trio.lowlevel.open_process(
        [sys.executable, "-c", CHILD, podman.docker_host, podman.image, node, str(place / "w"),
         f"sleep {tag}"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_until(lambda: with_arg(tag) or child.poll() is not None, 20,
                         "the task to start")
        assert child.poll() is None, (await child.stderr.receive_some()).decode()
        child.kill()
        await child.wait()
        assert len(left(podman, node)) == 1  # the engine keeps it running
        box = await make_box(podman, node, place)
        try:
            assert await box.reap() == 1  # what the next start of the agent does
            assert await box.reap() == 0
        finally:
            await box.aclose()
        assert left(podman, node) == []
        assert await gone(tag)
    finally:
        child.kill()
        await child.wait()


CHILD = """
import sys
from pathlib import Path
import trio
from bzzz.exec.sandbox import Limits, open_sandbox
host, image, node, ws, script = sys.argv[1:6]

async def main():
    box = await open_sandbox("container", node_id=node, hidden=[], state_dir=Path(ws) / "s",
                             docker_host=host, default_image=image, network="none",
                             limits=Limits(), user=None)
    await box.run(["sh", "-c", script], Path(ws), {"PATH": "/bin"}, timeout=600,
                  max_output=1000, kill_grace=1, task_id="t")
trio.run(main)
"""


async def test_reap_removes_only_this_nodes_containers(podman, node, place):
    async with Engine(podman.docker_host) as engine:
        ours = await engine.create({"Image": podman.image, "Cmd": ["sleep", "300"],
                                    "Labels": {"bzzz.node": node, "bzzz.task": "old"}})
        theirs = await engine.create({"Image": podman.image, "Cmd": ["sleep", "300"],
                                      "Labels": {"bzzz.node": node + "-other", "bzzz.task": "x"}})
        await engine.start(ours)
        try:
            box = await make_box(podman, node, place)
            assert await box.reap() == 1
            await box.aclose()
            assert left(podman, node) == [] and podman.containers(f"bzzz.node={node}-other")
        finally:
            await engine.remove(ours)
            await engine.remove(theirs)


# -- limits ----------------------------------------------------------------------------------

async def test_memory_limit_kills(podman, node, place):
    box = await make_box(podman, node, place, limits=Limits(memory="64m"))
    try:
        r = await sh(box, "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
                     place / "w")
    finally:
        await box.aclose()
    assert r.status == "failed" and r.exit_code == 137 and "survived" not in r.output
    assert "memory" in r.note


async def test_pids_limit_caps_a_fork_loop(podman, node, place):
    box = await make_box(podman, node, place, limits=Limits(pids=32))
    try:
        r = await sh(box, "n=0; while [ $n -lt 200 ]; do sleep 30 & n=$((n+1)); done; echo all-forked",
                     place / "w", timeout=60)
    finally:
        await box.aclose()
    assert r.status == "failed" and r.exit_code not in (0, None)
    assert "can't fork" in r.output and "all-forked" not in r.output
    assert left(podman, node) == []


# -- network ---------------------------------------------------------------------------------

async def test_network_none_has_only_loopback(box, place):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        r = await sh(box, f"cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '; "
                          f"echo hi | nc -w 1 127.0.0.1 {port} 2>/dev/null && echo connected || echo refused",
                     place / "w")
    finally:
        srv.close()
    assert r.output.split() == ["lo", "refused"]


async def test_network_bridge_has_an_interface(podman, node, place):
    box = await make_box(podman, node, place, network="bridge")
    try:
        r = await sh(box, "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '", place / "w")
    finally:
        await box.aclose()
    assert "lo" in r.output.split() and len(r.output.split()) >= 2, r.output


# -- images, choosing, run_shell -------------------------------------------------------------

async def test_a_missing_image_is_a_clear_failure(box, place):
    start = trio.current_time()
    r = await sh(box, "true", place / "w", image="localhost/no-such-image:1")
    assert r.status == "failed" and r.exit_code is None
    assert "image localhost/no-such-image:1 is not available on this node" in r.output
    assert trio.current_time() - start < 5  # no pull


async def test_a_missing_default_image_stops_start_up(podman, node, place):
    with pytest.raises(SandboxError, match="not available"):
        await make_box(podman, node, place, default_image="localhost/no-such-image:1")


async def test_auto_prefers_a_reachable_engine(podman, node, place):
    box = await open_sandbox("auto", node_id=node, hidden=[], state_dir=place / "s",
                             docker_host=podman.docker_host, default_image=podman.image,
                             network="none", limits=Limits(), user=task_identity(None))
    try:
        assert box.kind == "container" and "container (engine unix://" in box.describe()
    finally:
        await box.aclose()


async def test_run_shell_in_a_busybox_image(box, place, podman, node):
    ws = place / "w"
    r = await run_shell("echo $0; pwd; echo $HOME; head -c 100000 /dev/zero | tr '\\0' b; echo; echo END",
                        ws, sandbox=box, max_output=500)
    assert r.status == "succeeded", r.output
    assert r.extra["sandbox"] == "container" and r.truncated and r.output_bytes > 100000
    assert r.output.rstrip().endswith("END")
    bad = await run_shell("echo ok", ws, sandbox=box, env={"X": "a\x00b"})
    assert bad.status == "refused"
    r = await run_shell("exit 7", ws, sandbox=box)
    assert r.status == "failed" and r.exit_code == 7
    assert left(podman, node) == []


async def test_workspace_host_dir_maps_mounts(podman, node, place):
    """An agent in a container sees its workspace root at one path, the engine at another."""
    host_root = place / "host-side"
    (host_root / "t9").mkdir(parents=True)
    (host_root / "t9" / "from-host").write_text("seen\n")
    agent_root = place / "agent-side"
    box = await make_box(podman, node, place, workspace_root=agent_root,
                         workspace_host_dir=host_root)
    try:
        r = await sh(box, "cat from-host; pwd", agent_root / "t9")
    finally:
        await box.aclose()
    assert r.output.split() == ["seen", str(agent_root / "t9")]


async def test_the_output_directory_is_writable_too(box, place):
    out = place / "out" / "t1"
    r = await box.run(["sh", "-c", 'echo "done it" > "$BZZZ_OUTPUT/summary.md"'], place / "w",
                      {**ENV, "BZZZ_OUTPUT": str(out)}, timeout=30, max_output=1000,
                      kill_grace=1, task_id="t", output_dir=out)
    assert r.status == "succeeded", r.output
    assert (out / "summary.md").read_text() == "done it\n"


# -- the task gateway in containers (bzzz/exec/sidecar.py) ------------------------------------

@pytest.fixture(scope="module")
def python_image(podman) -> str:
    """An image with python3 for the gateway's side container: the suite's Debian base (the
    task image stays busybox, which has none)."""
    tag, _digest = image_helper.load_base(podman)
    return tag


async def _origin(task_status=trio.TASK_STATUS_IGNORED):
    """An HTTP origin on the host's loopback, answering with the request line."""
    async def handle(stream):
        head = await read_request_head(stream)
        if head is None:
            return
        body = head.split(b"\r\n", 1)[0]
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close"
                              b"\r\n\r\n%s" % (len(body), body))
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


HOSTILE = """
wget -q -O - http://127.0.0.1:{port}/via; echo
# (busybox's wget may crash when it cannot connect: the subshell waits and keeps it quiet)
(unset http_proxy HTTP_PROXY; wget -q -T 3 -O - http://127.0.0.1:{port}/direct; exit $?) \
  >/dev/null 2>&1 && echo reached-direct || echo blocked-direct
for target in "127.0.0.1 {api}" "::1 {api}" "169.254.169.254 80" "10.0.0.1 80"; do
  (echo x | nc -w 2 $target) >/dev/null 2>&1 && echo "reached:${{target% *}}" \
    || echo "blocked:${{target% *}}"
done
nslookup example.org >/dev/null 2>&1 && echo resolved || echo no-dns
cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '
cat /proc/[0-9]*/comm 2>/dev/null | grep -c python | sed 's/^/pythons:/'
"""


async def test_a_container_task_has_only_its_gateway(podman, node, place, python_image,
                                                     tmp_path):
    """A busybox task (no python) gets the gateway through a side container: what the
    allowlist names passes and is counted; a raw socket to the host's loopback (v4, v6),
    link-local or the LAN, the proxy variables unset, DNS: none gets through; the side
    container is invisible to the task and gone after it."""
    gw = Gateway(tmp_path / "gw")
    box = await make_box(podman, node, place, network="gateway", gateway=gw,
                         gateway_image=python_image)
    assert box.gateway_image == python_image and "side container" in box.describe()
    try:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(_origin)
            api = await nursery.start(_origin)  # stands in for the agent's API
            async with gw.route("t1", Allowlist.build([f"127.0.0.1:{port}"])) as route:
                r = await sh(box, HOSTILE.format(port=port, api=api), place / "w",
                             task_id="t1")
                assert left(podman, node) == []  # the task's and the side container
            nursery.cancel_scope.cancel()
    finally:
        await box.aclose()
    words = r.output.split()
    assert r.status == "succeeded", r.output
    assert words[:3] == ["GET", "/via", "HTTP/1.1"], words
    assert words[3:] == ["blocked-direct", "blocked:127.0.0.1", "blocked:::1",
                         "blocked:169.254.169.254", "blocked:10.0.0.1", "no-dns", "lo",
                         "pythons:0"], words
    assert route.egress.doc()["hosts"][f"127.0.0.1:{port}"]["requests"] == 1


async def test_a_gateway_image_without_python_means_no_network(podman, node, place, tmp_path):
    gw = Gateway(tmp_path / "gw")
    box = await make_box(podman, node, place, network="gateway", gateway=gw,
                         gateway_image=podman.image)  # busybox: no python3
    try:
        assert box.gateway_image is None and "python3" in box.gateway_note
        assert "no network" in box.describe() and podman.image in box.describe()
        async with gw.route("t1", Allowlist()):
            r = await sh(box, "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '",
                         place / "w", task_id="t1")
        assert r.output.split() == ["lo"], r.output
    finally:
        await box.aclose()


async def test_a_side_container_left_by_a_killed_agent_is_reaped(podman, node, place,
                                                                  python_image, tmp_path):
    gw = Gateway(tmp_path / "gw")
    box = await make_box(podman, node, place, network="gateway", gateway=gw,
                         gateway_image=python_image)
    try:
        async with gw.route("t1", Allowlist()) as route:
            await box._side(route.socket_path, "t1", f"bzzz-{node}-left")
            assert len(left(podman, node)) == 1
        assert await box.reap() == 1 and left(podman, node) == []
    finally:
        await box.aclose()
