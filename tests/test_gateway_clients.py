"""Real clients through the task gateway (docs/gateway.md): pip, npm and git, each run in a
real bubblewrap sandbox whose only way out is its gateway route, reach a local package index,
registry or git host the allowlist names, unchanged; an index it does not name gets the
gateway's 403, which pip reports, and the refusal is on the task's account."""

import base64
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import trio

from bzzz.devhub import DevHubThread
from bzzz.gateway import inside
from bzzz.gateway.allow import Allowlist
from bzzz.gateway.proxy import Gateway, Route

from .conftest import require
from .helpers import read_request_head

@pytest.fixture(autouse=True)
def _bwrap():
    require(shutil.which("bwrap") is not None, "bubblewrap is not installed")

RUN_LIMIT = 60  # seconds for one client in its sandbox


# -- a tiny origin in the test's loop: fixed files by path -----------------------------------

async def _serve(files: dict[str, tuple[str, bytes]], seen: list[str],
                 task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Answer each request with ``files[path]`` (content type, body) or a 404, then close;
    ``seen`` gets each request's path."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            buf = await read_request_head(stream)
            if buf is None:
                return
            method, path, _ = buf.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            seen.append(path)
            found = files.get(path.split("?", 1)[0])
            status = "200 OK" if found else "404 Not Found"
            ctype, body = found or ("text/plain", b"")
            await stream.send_all(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}"
                "\r\nConnection: close\r\n\r\n".encode() + (b"" if method == "HEAD" else body))

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


# -- a sandbox with only the gateway ----------------------------------------------------------

async def _boxed(gw: Gateway, route: Route, box: Path, argv: list[str],
                 cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``argv`` in bubblewrap with its own network namespace, the route's socket and the
    forwarder in front of it; ``box`` is the one writable place and HOME; ``env`` adds to
    the route's variables. Returns the exit status and what it printed (stdout, stderr)."""
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
           "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run", "--tmpfs", "/tmp",
           *inside.bwrap_args(route.socket_path, gw.forwarder),
           # the test's own interpreter stays visible even when it lives under /tmp (a clone
           # of the repository there, as CI may make)
           "--ro-bind", sys.prefix, sys.prefix,
           "--bind", str(box), str(box), "--chdir", str(cwd or box), "--",
           *inside.wrap_argv(gw.python, argv)]
    full = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(box), "LANG": "C.UTF-8",
            **route.env(), **(env or {})}
    with trio.fail_after(RUN_LIMIT):
        done = await trio.run_process(cmd, env=full, capture_stdout=True, capture_stderr=True,
                                      check=False)
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


@pytest.fixture
def box(tmp_path):
    path = tmp_path / "box"
    path.mkdir()
    return path


@pytest.fixture
def gw(tmp_path):
    gateway = Gateway(tmp_path / "gw")
    require(bool(gateway.python), "no system python3 for the forwarder")
    return gateway


# -- pip from a local PEP 503 index ------------------------------------------------------------

def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode()


def _wheel(name: str, version: str) -> tuple[str, bytes]:
    """A pure-Python wheel of one module, written by hand: its file name and bytes."""
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": b'VALUE = "through the gateway"\n',
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 .encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bzzz-tests\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return f"{name}-{version}-py3-none-any.whl", out.getvalue()


PIP_ENV = {"PIP_CONFIG_FILE": os.devnull}  # no configuration of this machine's


def _pip_python() -> str | None:
    """An interpreter with pip: this one, else the system's."""
    if importlib.util.find_spec("pip") is not None:
        return sys.executable
    system = "/usr/bin/python3"
    if os.path.exists(system) and subprocess.run([system, "-m", "pip", "--version"],
                                                 capture_output=True).returncode == 0:
        return system
    return None


PIP_PYTHON = _pip_python()


async def test_pip_installs_from_an_allowed_index_and_is_refused_by_one_not_allowed(gw, box):
    require(PIP_PYTHON is not None, "pip is not installed")
    python = PIP_PYTHON
    wheel_name, wheel = _wheel("gwprobe", "1.0")
    digest = hashlib.sha256(wheel).hexdigest()
    files = {"/simple/gwprobe/": ("text/html", (
        f'<!DOCTYPE html><html><body><a href="/files/{wheel_name}#sha256={digest}">'
        f"{wheel_name}</a></body></html>").encode()),
        f"/files/{wheel_name}": ("application/octet-stream", wheel)}
    seen: list[str] = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_serve, files, seen)

        def pip(target: str, *more: str) -> list[str]:
            return [python, "-m", "pip", "install", *more, "--index-url",
                    f"http://127.0.0.1:{port}/simple/", "--no-cache-dir",
                    "--disable-pip-version-check", "--no-input", "--target",
                    str(box / target), "gwprobe"]

        async with gw.route("pip", Allowlist.build([f"127.0.0.1:{port}"])) as route:
            code, out = await _boxed(gw, route, box, pip("site"), env=PIP_ENV)
            assert code == 0, out
            assert (box / "site" / "gwprobe" / "__init__.py").read_text() == \
                'VALUE = "through the gateway"\n'
            assert (box / "site" / "gwprobe-1.0.dist-info" / "METADATA").exists()
            doc = route.egress.doc()
            assert doc["hosts"][f"127.0.0.1:{port}"]["requests"] == 2, doc
            assert doc["bytes_in"] > len(wheel) and doc["refused_total"] == 0
        assert seen == ["/simple/gwprobe/", f"/files/{wheel_name}"]

        # the same index, not on this task's allowlist: the gateway's 403, in pip's words
        # (pip tells why an index page failed only at its debug level, -vv)
        async with gw.route("pip-refused", Allowlist.build([])) as route:
            code, out = await _boxed(gw, route, box, pip("refused", "-vv"), env=PIP_ENV)
            assert code != 0, out
            assert "No matching distribution found for gwprobe" in out, out
            assert f"403 Client Error: Forbidden for url: http://127.0.0.1:{port}/simple/" \
                "gwprobe/" in out, out
            refused = route.egress.doc()["refused"]
            assert list(refused) == [f"127.0.0.1:{port}"], refused
            assert list(refused[f"127.0.0.1:{port}"]) == [
                f"127.0.0.1:{port} is not on this task's allowlist"]
        assert len(seen) == 2 and not (box / "refused" / "gwprobe").exists()
        nursery.cancel_scope.cancel()


# -- npm from a local registry -----------------------------------------------------------------

def _npm_package(name: str, version: str) -> bytes:
    """A package's tarball as a registry serves it (everything under package/)."""
    members = {"package/package.json": json.dumps({"name": name, "version": version,
                                                   "main": "index.js"}).encode(),
               "package/index.js": b'module.exports = "through the gateway";\n'}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, data in members.items():
            member = tarfile.TarInfo(path)
            member.size, member.mode = len(data), 0o644
            tar.addfile(member, io.BytesIO(data))
    return out.getvalue()


NPM = shutil.which("npm")


async def test_npm_installs_from_an_allowed_registry(gw, box):
    require(NPM is not None, "npm is not installed")
    tgz = _npm_package("gwprobe", "1.0.0")
    seen: list[str] = []
    files: dict[str, tuple[str, bytes]] = {}
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_serve, files, seen)
        tarball = "/gwprobe/-/gwprobe-1.0.0.tgz"
        files[tarball] = ("application/octet-stream", tgz)
        files["/gwprobe"] = ("application/json", json.dumps({
            "name": "gwprobe", "dist-tags": {"latest": "1.0.0"},
            "versions": {"1.0.0": {"name": "gwprobe", "version": "1.0.0", "main": "index.js",
                                   "dist": {"tarball": f"http://127.0.0.1:{port}{tarball}",
                                            "shasum": hashlib.sha1(tgz).hexdigest(),
                                            "integrity": "sha512-" + base64.b64encode(
                                                hashlib.sha512(tgz).digest()).decode()}}}
        }).encode())
        app = box / "app"
        app.mkdir()
        (app / "package.json").write_text('{"name": "app", "version": "0.0.0", '
                                          '"private": true}\n')
        async with gw.route("npm", Allowlist.build([f"127.0.0.1:{port}"])) as route:
            code, out = await _boxed(gw, route, box, [
                str(NPM), "install", "--registry", f"http://127.0.0.1:{port}/", "--no-audit",
                "--no-fund", "--update-notifier=false", "gwprobe"], cwd=app)
            assert code == 0, out
            doc = route.egress.doc()
            assert doc["hosts"][f"127.0.0.1:{port}"]["requests"] == 2, doc
            assert doc["refused_total"] == 0, doc
        assert seen == ["/gwprobe", tarball]
        installed = app / "node_modules" / "gwprobe"
        assert (installed / "index.js").read_text() == 'module.exports = "through the gateway";\n'
        assert json.loads((app / "package.json").read_text())["dependencies"] == {
            "gwprobe": "^1.0.0"}
        nursery.cancel_scope.cancel()


# -- git over HTTP from devhub -----------------------------------------------------------------

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture
def hub():
    with DevHubThread(seed={"users": [{"login": "alice", "token": "t-alice"}],
                            "repos": [{"full_name": "alice/notes", "private": True}]}) as d:
        yield d


async def test_git_clones_over_http_from_an_allowed_host(gw, box, hub):
    """A private repository: git's first request gets devhub's 401, its second carries the
    token from the URL, and the pack comes: all pass the gateway as they are."""
    require(shutil.which("git") is not None, "git is not installed")
    port = int(hub.url.rsplit(":", 1)[1])
    remote = f"http://x-access-token:t-alice@127.0.0.1:{port}/alice/notes.git"
    async with gw.route("git", Allowlist.build([f"127.0.0.1:{port}"])) as route:
        code, out = await _boxed(gw, route, box, ["git", "clone", "-q", remote,
                                                  str(box / "notes")], env=GIT_ENV)
        assert code == 0, out
        doc = route.egress.doc()
        assert doc["hosts"][f"127.0.0.1:{port}"]["requests"] >= 3, doc  # 401, refs, pack
        assert doc["refused_total"] == 0, doc
    assert (box / "notes" / "README.md").is_file()
    git = ["git", "-c", f"safe.directory={box / 'notes'}"]
    here = await trio.run_process([*git, "-C", str(box / "notes"), "rev-parse", "HEAD"],
                                  capture_stdout=True, env={**os.environ, **GIT_ENV})
    there = await trio.run_process([*git, "ls-remote", remote, "refs/heads/main"],
                                   capture_stdout=True, env={**os.environ, **GIT_ENV})
    assert there.stdout.split()[0] == here.stdout.strip()
