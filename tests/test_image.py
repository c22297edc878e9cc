"""The agent's image, built from the repository's Dockerfile and run with podman.

The base image is made locally (no registry is reachable: .ci/base-image.sh, cached outside
the repository; about a minute the first time on a machine) and the Dockerfile's FROM is
pointed at it through BASE/BASE_DIGEST. The image is built once per session (about a
minute) and saved to the cache, where bench/image.py finds it. The agent runs in the image
on the host's network, against a devhub on the host, and runs its task in a sibling
container through the mounted Docker-compatible socket (podman's service)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import httpx
import pytest

from bzzz.devhub import DevHubThread
from bzzz.testing import image
from bzzz.testing import podman as podman_helper
from bzzz.testing.agents import free_port
from bzzz.testing.wait import wait_for

from .conftest import require

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}
UID = 10001


@pytest.fixture(scope="session")
def podman():
    ok, reason = podman_helper.available()
    require(ok, reason)
    with podman_helper.PodmanService() as service:
        yield service


@pytest.fixture(scope="session")
def built(podman):
    result = image.build(podman)
    print(f"image {result.tag}: {result.size_mb:.1f} MB, built in {result.seconds:.1f} s "
          f"(+{result.context_seconds:.1f} s for wheels and context)")
    image.save_cached(podman, result)  # for bench/image.py
    return result


@pytest.fixture
def place():
    """Host directories the agent (uid 10001) owns, mounted at the same paths inside."""
    root = Path(tempfile.mkdtemp(prefix="bzzz-image-test-"))
    os.chmod(root, 0o755)
    for d in ("data", "work", "secrets"):
        (root / d).mkdir()
        os.chown(root / d, UID, UID)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def agent_env(place: Path, api: int, hub_url: str = "", **extra: str) -> dict[str, str]:
    env = {"BZZZ_NODE_ID": "imaged", "BZZZ_DATA_DIR": str(place / "data"),
           "BZZZ_LISTEN": "/ip4/127.0.0.1/tcp/0", "BZZZ_API_LISTEN": f"127.0.0.1:{api}",
           "BZZZ_MDNS": "off", "BZZZ_DETECT_CAPABILITIES": "off", "BZZZ_CAPABILITIES": "shell",
           "BZZZ_WORKSPACE_DIR": str(place / "work")}
    if hub_url:
        env |= {"BZZZ_GITHUB__URL": hub_url, "BZZZ_GITHUB__REPOS": "owner/tasks",
                "BZZZ_GITHUB__POLL_INTERVAL": "0.3", "BZZZ_GITHUB__WRITE_INTERVAL": "0",
                "GITHUB_TOKEN_FILE": str(place / "secrets" / "token")}
    return env | extra


def socket_mount(podman) -> tuple[list[tuple[str, str]], list[int]]:
    """The engine's socket at /var/run/docker.sock, and its group for the agent's user."""
    st = podman.socket.stat()
    if not st.st_mode & stat.S_IWGRP:  # the socket's group must be able to connect
        os.chmod(podman.socket, stat.S_IMODE(st.st_mode) | stat.S_IRGRP | stat.S_IWGRP)
    return [(str(podman.socket), "/var/run/docker.sock")], [st.st_gid]


def test_the_image_is_small_non_root_and_has_no_build_tools(podman, built):
    print(f"image_size_mb={built.size_mb:.1f}")
    assert built.size_mb <= 250, f"the image is {built.size_mb:.1f} MB (target 250)"
    inspected = image.inspect(podman, built.tag)
    config = inspected["Config"]
    assert config["User"] == str(UID)
    assert config["StopSignal"] == "SIGTERM"
    health = inspected.get("Healthcheck") or config.get("Healthcheck")  # podman: top level
    assert health and "/healthz" in " ".join(health["Test"])
    r = podman.podman("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", built.tag,
                      "-c", "id -u; for t in gcc cc c++ make ld as pip pip3; do "
                      "command -v $t && echo has-$t; done; "
                      "python3 -c 'import ensurepip' 2>/dev/null && echo has-ensurepip; "
                      "ls /opt/bzzz/bin; git --version; tini --version").stdout.decode()
    assert r.splitlines()[0] == str(UID), r
    assert "has-" not in r, r
    assert "bzzz" in r.split() and "git version" in r and "tini version" in r


def test_the_agent_in_the_image_is_healthy_and_stops_on_sigterm(podman, built, place):
    api = free_port()
    env = agent_env(place, api, BZZZ_SANDBOX="none")
    with image.AgentContainer(podman, built.tag, env=env,
                              mounts=[(str(place / "data"), str(place / "data")),
                                      (str(place / "work"), str(place / "work"))]) as agent:
        took = agent.wait_healthy(30)
        print(f"healthy after {took:.2f} s")
        assert image.get_healthz(f"http://127.0.0.1:{api}/healthz")
        status = httpx.get(f"http://127.0.0.1:{api}/api/v1/status", timeout=5).json()
        assert status["node_id"] == "imaged"
        code, secs = agent.stop(timeout=20)
        print(f"SIGTERM: exit {code} after {secs:.2f} s")
        assert code == 0, agent.logs()[-2000:]
        assert secs < 10, f"took {secs:.1f} s to stop"
        # the agent wrote its identity as uid 10001 into the data directory it was given
        assert (place / "data" / "identity.key").stat().st_uid == UID


def test_the_agent_in_the_image_runs_a_task_in_a_sibling_container(podman, built, place):
    mounts, groups = socket_mount(podman)
    (place / "secrets" / "token").write_text("t-bot\n")
    os.chown(place / "secrets" / "token", UID, UID)
    os.chmod(place / "secrets" / "token", 0o600)
    with DevHubThread(seed=SEED) as hub:
        owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                             timeout=30)
        port = hub.url.rsplit(":", 1)[1].strip("/")
        # its only way out: the node's gateway, through a side container of the agent's
        # own image (bzzz/exec/sidecar.py); the allowed host answers, a raw socket fails
        script = ("busybox | head -n 1; test -d /opt/bzzz || echo no-agent-files-here; "
                  f"id -u; wget -S -q -O /dev/null http://127.0.0.1:{port}/ 2>&1 | head -n 1; "
                  f"(echo x | nc -w 2 127.0.0.1 {port}; exit $?) >/dev/null 2>&1 "
                  "&& echo raw-reached || echo raw-blocked")
        n = owner.post("/repos/owner/tasks/issues", json={
            "title": "Sibling", "labels": ["bzzz"],
            "body": f"```bzzz\n{script}\n```"}).json()["number"]
        api = free_port()
        env = agent_env(place, api, hub.url, BZZZ_SANDBOX="container",
                        BZZZ_TASK_IMAGE=podman.image, BZZZ_GATEWAY_IMAGE=built.tag,
                        BZZZ_TASK_EGRESS=f"127.0.0.1:{port}",
                        BZZZ_GITHUB__CLOSE_ON_SUCCESS="off")
        mounts += [(str(place / d), str(place / d)) for d in ("data", "work", "secrets")]
        with image.AgentContainer(podman, built.tag, env=env, mounts=mounts,
                                  group_add=groups) as agent:
            agent.wait_healthy(30)

            def labels():
                return {lb["name"] for lb in owner.get(
                    f"/repos/owner/tasks/issues/{n}").json()["labels"]}
            try:
                wait_for(lambda: {"bzzz:done", "bzzz:failed"} & labels(), 120,
                         what="the task finished")
            except Exception:
                print(agent.logs()[-4000:])
                raise
            logs = agent.logs()
            assert "bzzz:done" in labels(), logs[-3000:]
            results = [c["body"] for c in owner.get(f"/repos/owner/tasks/issues/{n}/comments")
                       .json() if "<!-- bzzz:result:" in c["body"]]
            assert len(results) == 1, results
            # busybox answered: the task ran in the task image, not in the agent's image
            assert "BusyBox v" in results[0] and "no-agent-files-here" in results[0]
            assert str(UID) in results[0].split()  # as the agent's user, not root
            assert "HTTP/1.1" in results[0] and "raw-blocked" in results[0], results[0]
            assert "its forwarder in a side container" in logs
            assert "t-bot" not in logs  # the token never reaches the logs
            code, secs = agent.stop(timeout=20)
            assert code == 0 and secs < 10, (code, secs)
        # the sibling was removed after the task
        assert podman.containers("bzzz.node=imaged") == []
