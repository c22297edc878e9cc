"""The task gateway (bzzz/gateway/): its allowlist and dial policy as cores, the proxy on a
real Unix socket against real local servers, and the forwarder inside a real bubblewrap
sandbox whose network namespace holds nothing else."""

import os
import shutil
import socket
import subprocess
import sys

import pytest
import trio

from bzzz.gateway import forwarder
from bzzz.gateway.allow import PRESETS, Allowlist, EgressError, Rule, parse
from bzzz.gateway.policy import Egress, dialable
from bzzz.gateway.proxy import Gateway
from bzzz.testing.wait import wait_until

from .conftest import require
from .helpers import read_request_head, unix_exchange

# -- the allowlist -----------------------------------------------------------------------------


def test_entries_parse_to_rules():
    assert parse("Example.ORG.") == [Rule("example.org")]
    assert parse("*.example.org") == [Rule("example.org", wildcard=True)]
    assert parse("example.org:8443") == [Rule("example.org", 8443)]
    assert parse("10.0.0.7:3141") == [Rule("10.0.0.7", 3141, literal=True)]
    assert parse("[::1]:3141") == [Rule("::1", 3141, literal=True)]
    assert parse("@pypi") == [Rule(h) for h in PRESETS["pypi"]]
    for bad in ("", "@nope", "10.0.0.7", "exa mple.org", "*.org.:x", "host:0", "host:70000",
                "[::1", "*.", "-a.org", "a..org", "http://x.org"):
        with pytest.raises(EgressError):
            parse(bad)


def test_allowlist_matches_hosts_ports_and_wildcards():
    allow = Allowlist.build(["example.org", "*.pkg.dev", "git.example.net:8443",
                             "127.0.0.1:3141"])
    assert allow.allows("EXAMPLE.org.", 443) and allow.allows("example.org", 80)
    assert not allow.allows("example.org", 22)
    assert not allow.allows("sub.example.org", 443)  # a name is that name only
    assert allow.allows("a.b.pkg.dev", 443) and not allow.allows("pkg.dev", 443)
    assert not allow.allows("evilpkg.dev", 443)
    assert allow.allows("git.example.net", 8443) and not allow.allows("git.example.net", 443)
    assert allow.allows("127.0.0.1", 3141) and not allow.allows("127.0.0.1", 3142)
    assert not Allowlist().allows("example.org", 443)  # nothing by default


def test_a_repository_adds_only_what_the_ceiling_covers():
    allow = Allowlist.build(["@pypi"], repo=["registry.npmjs.org", "evil.example",
                                             "*.pythonhosted.org", "cdn.npmjs.org:8080"],
                            ceiling=["*.npmjs.org", "registry.npmjs.org", "files.pythonhosted.org"])
    assert allow.allows("registry.npmjs.org", 443)
    assert not allow.allows("evil.example", 443)
    assert not allow.allows("x.pythonhosted.org", 443)  # a wildcard is wider than one name
    assert not allow.allows("cdn.npmjs.org", 8080)  # the ceiling's ports are the web ports
    assert set(allow.beyond_ceiling) == {"evil.example", "*.pythonhosted.org",
                                         "cdn.npmjs.org:8080"}


def test_names_never_reach_the_node_or_link_local():
    name, literal = Rule("example.org"), Rule("127.0.0.1", 3141, literal=True)
    for addr in ("127.0.0.1", "::1", "169.254.169.254", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1",
                 "224.0.0.251", "not-an-address"):
        assert not dialable(addr, name), addr
    for addr in ("93.184.216.34", "10.1.2.3", "192.168.1.9", "2606:2800::1"):
        assert dialable(addr, name), addr
    assert dialable("127.0.0.1", literal) and not dialable("127.0.0.2", literal)


def test_an_account_keeps_what_was_refused():
    e = Egress()
    e.use("example.org", 443).bytes_in += 10
    e.refuse("evil.example:443", "not allowed")
    e.refuse("evil.example:443", "not allowed")
    doc = e.doc()
    assert doc["refused"] == {"evil.example:443": {"not allowed": 2}}
    assert doc["refused_total"] == 2 and doc["bytes_in"] == 10


# -- the proxy on a real socket ----------------------------------------------------------------

async def _origin(task_status=trio.TASK_STATUS_IGNORED):
    """A tiny HTTP origin on loopback: answers every request with its own request line, and
    echoes whatever follows a line 'ECHO'."""

    async def handle(stream):
        buf = await read_request_head(stream)
        if buf is None:
            return
        line = buf.split(b"\r\n", 1)[0]
        if line == b"ECHO":
            rest = buf.split(b"\r\n\r\n", 1)[1]
            await stream.send_all(rest)
            while chunk := await stream.receive_some(4096):
                await stream.send_all(chunk)
            return
        host = next((h.split(b":", 1)[1].strip() for h in buf.split(b"\r\n")[1:]
                     if h.lower().startswith(b"host:")), b"")
        body = line + b"\n" + host + b"\n" + (
            b"close" if b"connection: close" in buf.lower() else b"keep")
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close"
                              b"\r\n\r\n%s" % (len(body), body))

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_the_proxy_forwards_what_is_allowed_and_refuses_the_rest(tmp_path):
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_origin)
        gw = Gateway(tmp_path / "gw")
        allow = Allowlist.build([f"127.0.0.1:{port}", f"localhost:{port}"])
        async with gw.route("owner/repo#7", allow) as route:
            assert oct(route.socket_path.stat().st_mode & 0o777) == "0o666"
            # plain HTTP: forwarded once, in origin form, with the proxy's headers gone
            out = await unix_exchange(route.socket_path, (
                f"GET http://127.0.0.1:{port}/a?b=1 HTTP/1.1\r\nHost: evil.example\r\n"
                "Proxy-Authorization: Basic eA==\r\n\r\n").encode())
            # the Host is the URL's, whatever the task wrote: no asking an allowed server
            # for another site
            assert out.startswith(b"HTTP/1.1 200") and out.endswith(
                f"GET /a?b=1 HTTP/1.1\n127.0.0.1:{port}\nclose".encode()), out
            # a tunnel: bytes pass both ways untouched
            out = await unix_exchange(route.socket_path, (
                f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\nECHO\r\n\r\nping"
                "pong").encode(), until=b"pong")
            assert out == b"HTTP/1.1 200 Connection Established\r\n\r\npingpong"
            # refused: not on the list, a name resolving to loopback, garbage
            for req, status, target in (
                    (f"CONNECT 127.0.0.1:{port + 1} HTTP/1.1\r\n\r\n", b"403",
                     f"127.0.0.1:{port + 1}"),
                    ("CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n", b"403", "169.254.169.254:80"),
                    (f"GET http://localhost:{port}/ HTTP/1.1\r\n\r\n", b"403",
                     f"localhost:{port}"),
                    ("GET https://example.org/ HTTP/1.1\r\n\r\n", b"400", None),
                    ("CONNECT @everyone:443 HTTP/1.1\r\n\r\n", b"400", "(not a host name)"),
                    ("\x16\x03\x01garbage\r\n\r\n", b"400", None)):
                out = await unix_exchange(route.socket_path, req.encode())
                assert out.split(b" ")[1] == status, (req, out)
                assert b"X-Bzzz-Gateway: refused" in out
                if target:
                    assert target in route.egress.refused, route.egress.refused
            doc = route.egress.doc()
            assert doc["hosts"][f"127.0.0.1:{port}"]["connections"] == 2
            assert doc["hosts"][f"127.0.0.1:{port}"]["requests"] == 1
            assert doc["bytes_in"] > 0 and doc["refused_total"] == 4
            assert gw.refused_by_host["169.254.169.254"] == 1
        assert not route.socket_path.exists()  # the task ended: its way out is gone
        nursery.cancel_scope.cancel()


# -- the forwarder inside bubblewrap ------------------------------------------------------------

# the sandbox runs the forwarder with the system's python (a virtualenv may not be inside)
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

PROBE = r"""
import socket, sys, urllib.request
port, api = int(sys.argv[1]), int(sys.argv[2])
out = []
proxy = urllib.request.ProxyHandler({"http": "http://127.0.0.1:3128"})
body = urllib.request.build_opener(proxy).open(f"http://127.0.0.1:{port}/via", timeout=10).read()
out.append("proxied:" + body.decode().split()[1])
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"),
                  (socket.AF_INET, "169.254.169.254"), (socket.AF_INET, "10.0.0.1")):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, api))
        out.append("reached:" + host)
    except OSError:
        out.append("blocked:" + host)
try:
    socket.getaddrinfo("example.org", 443)
    out.append("resolved")
except OSError:
    out.append("no-dns")
print(" ".join(out))
"""


async def test_in_a_sandbox_the_gateway_is_the_only_way_out(tmp_path):
    """A raw socket to the host's loopback (v4 and v6), link-local or the LAN fails in the
    sandbox's own network namespace, DNS does not resolve, and the proxy variables' address
    reaches the gateway."""
    require(shutil.which("bwrap") is not None, "bubblewrap is not installed")
    python = SYSTEM_PYTHON
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_origin)
        api = await nursery.start(_origin)  # stands in for the agent's API on the host
        gw = Gateway(tmp_path / "gw")
        async with gw.route("t", Allowlist.build([f"127.0.0.1:{port}"])) as route:
            cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                   "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run",
                   "--bind", str(route.socket_path), "/run/bzzz-gateway.sock",
                   python, forwarder.__file__, "--socket", "/run/bzzz-gateway.sock", "--",
                   python, str(probe), str(port), str(api)]
            done = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True,
                                          check=False)
            assert done.returncode == 0, done.stderr.decode()
            words = done.stdout.decode().split()
            assert words == ["proxied:/via", "blocked:127.0.0.1", "blocked:::1",
                             "blocked:169.254.169.254", "blocked:10.0.0.1", "no-dns"], words
            assert route.egress.doc()["hosts"][f"127.0.0.1:{port}"]["requests"] == 1
        nursery.cancel_scope.cancel()


def test_the_forwarder_passes_the_exit_status(tmp_path):
    code = subprocess.run([sys.executable, forwarder.__file__, "--port", "0", "--socket",
                           str(tmp_path / "none"), "--", sys.executable, "-c",
                           "raise SystemExit(7)"]).returncode
    assert code == 7


async def test_a_task_cannot_hold_more_than_its_share_of_connections(tmp_path):
    """Each connection holds descriptors of the agent's: past MAX_CONNECTIONS at once a task's
    next ones are closed at once and counted, and the route serves again when they go."""
    from bzzz.gateway.proxy import MAX_CONNECTIONS
    gw = Gateway(tmp_path / "gw")
    async with gw.route("t", Allowlist()) as route:
        held = []
        for _ in range(MAX_CONNECTIONS):  # silent: each waits for a request head
            sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            await sock.connect(str(route.socket_path))
            held.append(trio.SocketStream(sock))
        await wait_until(lambda: route.connections == MAX_CONNECTIONS, 10,
                         what="the held connections served")
        extra = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await extra.connect(str(route.socket_path))
        with trio.fail_after(10):
            assert await extra.recv(100) == b""  # closed at once, nothing read
        extra.close()
        assert "(too many connections)" in route.egress.refused
        for stream in held:
            await stream.aclose()
        await wait_until(lambda: route.connections == 0, 10, what="the connections gone")
        out = await unix_exchange(route.socket_path, b"CONNECT x.org:443 HTTP/1.1\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 403")
