"""Task gateway, what it must get exactly right (bzzz/gateway/): no way around it, and
every model token on the task's account.

  hostile_reach_succeeded   a task in the bubblewrap sandbox with its gateway route tries
                            every way out a hostile task would: raw TCP to the host's
                            loopback (IPv4, IPv6) where the agent's API and another agent's
                            port listen, UDP to the host, link-local (a cloud's metadata
                            service), the LAN, DNS, the proxy asked for loopback, link-local,
                            names resolving to loopback and hosts not allowed, another task's
                            capability after that task ended, the host's processes in /proc.
                            Counts the attempts that got through. Target 0.
  tokens_accounted_ratio    model tokens on the task's account / tokens the model servers
                            counted, over requests in every dialect (OpenAI chat, Ollama
                            chat, Anthropic messages; streamed and not). Target exactly 1.

Run as `python bench/gateway_account.py [--quick] [--control]`; `--control` runs the same
probe with `task_network = "host"` (the opt-out), where most attempts must get through: it
shows the probe sees what it counts.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.exec.sandbox import BwrapSandbox  # noqa: E402
from bzzz.exec.shell import task_identity  # noqa: E402
from bzzz.gateway.allow import Allowlist  # noqa: E402
from bzzz.gateway.models import ModelEndpoint  # noqa: E402
from bzzz.gateway.proxy import Gateway  # noqa: E402
from bzzz.testing.fakeanthropic import anthropic_handler  # noqa: E402
from bzzz.testing.fakeollama import FakeModel, FakeOllama, FakeOllamaThread  # noqa: E402

KEY = "sk-bench-real-key"


# -- tokens ---------------------------------------------------------------------------------

def _prompt() -> list[dict[str, str]]:
    return [{"role": "user", "content": "x" * random.randint(1, 4000)}]


async def tokens(rounds: int, tmp: Path) -> dict[str, Any]:
    """Requests in every dialect through one route; the account against the servers'."""
    claude_handler = anthropic_handler(words=lambda: [f" w{i}" for i in range(random.randint(1, 40))])
    claude = http.server.ThreadingHTTPServer(("127.0.0.1", 0), claude_handler)
    threading.Thread(target=claude.serve_forever, daemon=True).start()
    replies = {f"m{i}": FakeModel([f"t{j} " for j in range(random.randint(1, 60))])
               for i in range(4)}
    try:
        with FakeOllamaThread(replies) as fake:
            fake.app.api_key = KEY
            eps = [ModelEndpoint("oai", fake.url, "openai", lambda: KEY),
                   ModelEndpoint("oll", fake.url, "ollama", lambda: KEY),
                   ModelEndpoint("ant", f"http://127.0.0.1:{claude.server_address[1]}",
                                 "anthropic", lambda: KEY)]
            gw = Gateway(tmp / "gw-tokens", models=eps)
            async with gw.route("bench", Allowlist()) as route:
                transport = httpx.AsyncHTTPTransport(uds=str(route.socket_path))
                async with httpx.AsyncClient(transport=transport, base_url="http://gw",
                                             timeout=30) as client:
                    for i in range(rounds):
                        await _ask(client, route.capability, i, random.choice(list(replies)))
                models = route.egress.doc()["models"]
            await gw.aclose()
            served_in = served_out = 0
            for r in fake.app.requests:
                if "chat" in r["path"]:
                    served_in += FakeOllama._prompt_tokens(r["body"])
                    served_out += len(fake.app.models[r["body"]["model"] + ":latest"].reply)
    finally:
        claude.shutdown()
    served_in += sum(i for i, _ in claude_handler.served)
    served_out += sum(o for _, o in claude_handler.served)
    accounted_in = sum(int(m["tokens_in"]) for m in models.values())
    accounted_out = sum(int(m["tokens_out"]) for m in models.values())
    served = served_in + served_out
    return {"value": round((accounted_in + accounted_out) / served, 6) if served else 0.0,
            "exact": (accounted_in, accounted_out) == (served_in, served_out),
            "requests": rounds, "tokens_served": served,
            "tokens_accounted": accounted_in + accounted_out}


async def _ask(http: httpx.AsyncClient, capability: str, i: int, model: str) -> None:
    stream = i % 2 == 0
    kind = i % 3
    if kind == 0:
        path, body = "/llm/oai/v1/chat/completions", {"model": model, "stream": stream,
                                                      "messages": _prompt()}
        if stream:
            body["stream_options"] = {"include_usage": True}
        headers = {"authorization": f"Bearer {capability}"}
    elif kind == 1:
        path, body = "/llm/oll/api/chat", {"model": model, "stream": stream,
                                           "messages": _prompt()}
        headers = {"authorization": f"Bearer {capability}"}
    else:
        path, body = "/llm/ant/v1/messages", {"model": "claude", "stream": stream,
                                              "max_tokens": 100, "messages": _prompt()}
        headers = {"x-api-key": capability, "anthropic-version": "2023-06-01"}
    async with http.stream("POST", path, json=body, headers=headers) as resp:
        async for _ in resp.aiter_raw():
            pass
        if resp.status_code != 200:
            raise SystemExit(f"{path}: {resp.status_code}")


# -- hostile reach ----------------------------------------------------------------------------

PROBE = r"""
import json, os, socket, sys, urllib.request
api, api6, udp, other_cap = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = {}
def tcp(name, fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2)
    try:
        s.connect(addr); out[name] = True
    except OSError:
        out[name] = False
    finally:
        s.close()
tcp("tcp 127.0.0.1 (agent API)", socket.AF_INET, ("127.0.0.1", api))
tcp("tcp ::1 (agent API)", socket.AF_INET6, ("::1", api6))
tcp("tcp 169.254.169.254 (metadata)", socket.AF_INET, ("169.254.169.254", 80))
tcp("tcp 10.0.0.1 (LAN)", socket.AF_INET, ("10.0.0.1", 80))
tcp("tcp 192.168.1.1 (LAN)", socket.AF_INET, ("192.168.1.1", 80))
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("127.0.0.1", udp))  # delivered only if the host's loopback is here
except OSError:
    pass
out["udp 127.0.0.1 (host)"] = None  # judged on the host
try:
    socket.getaddrinfo("example.org", 443); out["dns"] = True
except OSError:
    out["dns"] = False
proxy = urllib.request.build_opener(urllib.request.ProxyHandler(
    {"http": os.environ.get("http_proxy", "http://127.0.0.1:3128")}))
for name, url in (("proxy to 127.0.0.1 (agent API)", f"http://127.0.0.1:{api}/"),
                  ("proxy to localhost (agent API)", f"http://localhost:{api}/"),
                  ("proxy to [::1] (agent API)", f"http://[::1]:{api6}/"),
                  ("proxy to 169.254.169.254", "http://169.254.169.254/latest/meta-data/"),
                  ("proxy to a host not allowed", "http://example.org/")):
    try:
        proxy.open(url, timeout=5).read(); out[name] = True
    except Exception:
        out[name] = False
def connect(name, target):
    try:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        out[name] = s.recv(64).split(b" ")[1:2] == [b"200"]
        s.close()
    except OSError:
        out[name] = False
connect("CONNECT 127.0.0.1 (agent API)", f"127.0.0.1:{api}")
connect("CONNECT localhost (agent API)", f"localhost:{api}")
req = urllib.request.Request(os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:1") + "/models",
                             headers={"Authorization": f"Bearer {other_cap}"})
try:
    proxy.open(req, timeout=5).read(); out["an ended task's capability"] = True
except Exception:
    out["an ended task's capability"] = False
seen = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            seen.append(open(f"/proc/{pid}/cmdline", "rb").read())
        except OSError:
            pass
out["the host's processes in /proc"] = any(b"gateway_account" in c for c in seen)
out["another task's socket"] = os.path.isdir("/run/bzzz") and len(
    [p for p in os.listdir("/run/bzzz") if p.endswith(".sock")]) > 1
print(json.dumps(out))
"""


async def hostile(tmp: Path, network: str = "gateway") -> dict[str, Any]:
    if shutil.which("bwrap") is None:
        raise SystemExit("bench/gateway_account.py needs bubblewrap (apt-get install bubblewrap)")
    api = socket.socket()
    api.bind(("127.0.0.1", 0))
    api.listen(8)
    api6 = socket.socket(socket.AF_INET6)
    api6.bind(("::1", 0))
    api6.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    ws = tmp / "ws"
    ws.mkdir()
    os.chmod(ws, 0o777)
    probe = ws / "probe.py"
    probe.write_text(PROBE)
    with FakeOllamaThread() as fake:
        gw = Gateway(tmp / "gw-hostile",
                     models=[ModelEndpoint("oai", fake.url, "openai", lambda: KEY)])
        box = BwrapSandbox(hidden=[], state_dir=tmp / "state", network=network,
                           user=task_identity(None), gateway=gw)
        async with gw.route("earlier", Allowlist()) as earlier:
            ended = earlier.capability
        async with gw.route("bench", Allowlist.build(["127.0.0.1:1"])), \
                gw.route("neighbour", Allowlist()):
            out = await box.run(
                ["/usr/bin/python3", str(probe), str(api.getsockname()[1]),
                 str(api6.getsockname()[1]), str(udp.getsockname()[1]), ended],
                ws, {"PATH": "/usr/bin:/bin", "HOME": str(ws)}, timeout=120,
                max_output=1 << 16, kill_grace=1, task_id="bench")
        await gw.aclose()
    try:
        results = json.loads(out.output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(f"the probe failed: {out.status} {out.output[-2000:]}") from None
    try:
        udp.recvfrom(16)
        results["udp 127.0.0.1 (host)"] = True
    except BlockingIOError:
        results["udp 127.0.0.1 (host)"] = False
    for s in (api, api6, udp):
        s.close()
    through = sorted(k for k, v in results.items() if v)
    return {"value": len(through), "attempts": len(results), "through": through}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--control", action="store_true")
    args = ap.parse_args()
    random.seed(7)
    tmp = Path(tempfile.mkdtemp(prefix="bzzz-bench-gwacct-"))
    os.chmod(tmp, 0o755)
    if args.control:
        reach = trio.run(hostile, tmp, "host")
        print(json.dumps({"bench": "gateway_account", "name": "control_host_network_reached",
                          **reach}))
        shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        reach = trio.run(hostile, tmp)
        print(json.dumps({"bench": "gateway_account", "name": "hostile_reach_succeeded",
                          "target": 0, "ok": reach["value"] == 0, **reach,
                          "quick": args.quick}))
        counted = trio.run(tokens, 30 if args.quick else 300, tmp)
        print(json.dumps({"bench": "gateway_account", "name": "tokens_accounted_ratio",
                          "target": 1.0, "ok": counted["exact"], **counted,
                          "quick": args.quick}))
        if reach["value"] or not counted["exact"]:
            sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
