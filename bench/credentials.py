"""Short-lived GitHub credentials under load (issue #14, credentials). One JSON object per line:
{"bench", "figure", "metric", "value", "unit", "target", "ok", "params", ...}

  token_refresh_failed_requests  requests that failed because of an expired credential while
                                 several workers hammer devhub through one GitHubClient whose
                                 GitHub App installation tokens live a few seconds (target 0);
                                 with the refreshes done and the requests made
  revoked_token_failed_requests  the same while every installation token is revoked early,
                                 at random (each 401 is answered by one refresh and a repeat)
  token_refresh_ms               JWT signing plus POST /app/installations/{id}/access_tokens,
                                 p50 and p95

devhub runs as its own process (`bzzz devhub`), as the agents would see it.
Run as `python bench/credentials.py [--quick]` (--quick: about 15 s). Timings on a shared
machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bzzz.github.credentials import CredentialError, GitHubApp  # noqa: E402
from bzzz.github.client import GitHubClient, GitHubError  # noqa: E402

SEED = {"users": [{"login": "acme", "token": "t-acme"}],
        "repos": [{"full_name": "acme/tasks"}]}


def emit(metric: str, value, unit: str, target: str, ok: bool | None, **extra) -> None:
    params = extra.pop("params", {})
    print(json.dumps({"bench": "credentials", "figure": metric, "metric": metric,
                      "value": value, "unit": unit, "target": target, "ok": ok,
                      "params": params, **extra}), flush=True)


def start_devhub(tmp: Path) -> tuple[subprocess.Popen, str]:
    seed = tmp / "seed.json"
    seed.write_text(json.dumps(SEED))
    proc = subprocess.Popen([sys.executable, "-m", "bzzz", "devhub", "--seed", str(seed)],
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("devhub did not start")
    return proc, url


def make_app(url: str, tmp: Path, lifetime: int, slug: str) -> tuple[int, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp / f"{slug}.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    r = httpx.post(url + "/_devhub/apps", json={"slug": slug, "owner": "acme",
                                                "public_key": public.decode(),
                                                "token_lifetime": lifetime})
    r.raise_for_status()
    app_id = r.json()["id"]
    httpx.post(f"{url}/_devhub/apps/{app_id}/installations",
               json={"account": "acme"}).raise_for_status()
    return app_id, pem


class Timed(GitHubApp):
    """The App provider, timing each token it buys."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.timings: list[float] = []

    async def refresh(self, reason, stale=None):
        t0 = time.perf_counter()
        before = self.obtained
        token = await super().refresh(reason, stale)
        if self.obtained != before:
            self.timings.append((time.perf_counter() - t0) * 1e3)
        return token


async def load(url: str, app_id: int, pem: Path, seconds: float, workers: int,
               revoke_every: float | None) -> dict:
    provider = Timed(url, app_id, pem, owner="acme")
    failed_auth, failed_other = 0, 0
    async with GitHubClient(url, provider, write_interval=0) as gh, \
            httpx.AsyncClient(base_url=url) as admin, trio.open_nursery() as nursery:
        nursery.start_soon(provider.run)
        number = (await gh.request("POST", "/repos/acme/tasks/issues",
                                   json={"title": "bench"})).data["number"]
        deadline = trio.current_time() + seconds

        async def worker(i: int) -> None:
            nonlocal failed_auth, failed_other
            etag = None
            n = 0
            while trio.current_time() < deadline:
                n += 1
                try:
                    if n % 5 == 0:
                        await gh.request("POST", f"/repos/acme/tasks/issues/{number}/comments",
                                         json={"body": f"worker {i} round {n}"})
                    else:
                        reply = await gh.request("GET", "/repos/acme/tasks/issues", etag=etag)
                        etag = reply.etag
                except CredentialError:
                    failed_auth += 1
                except GitHubError as exc:
                    if exc.status == 401:
                        failed_auth += 1
                    else:
                        failed_other += 1
                await trio.sleep(0.01)

        async def revoker() -> None:
            rng = random.Random(7)
            inst = None
            while trio.current_time() < deadline:
                await trio.sleep(rng.uniform(0.5, 2) * revoke_every)
                inst = inst or provider.installation_id
                if inst:
                    await admin.delete(f"/_devhub/installations/{inst}/tokens")

        async with trio.open_nursery() as inner:
            for i in range(workers):
                inner.start_soon(worker, i)
            if revoke_every:
                inner.start_soon(revoker)
        nursery.cancel_scope.cancel()
    return {"failed_auth": failed_auth, "failed_other": failed_other, "requests": gh.requests,
            "refreshes": provider.refreshes, "unauthorized": gh.unauthorized,
            "retries": gh.credential_retries, "timings": provider.timings}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seconds = 6.0 if args.quick else 300.0  # quick: two refreshes, six revocations
    lifetime = 3 if args.quick else 10
    workers = 4
    with tempfile.TemporaryDirectory(prefix="bench-creds-") as tmp:
        proc, url = start_devhub(Path(tmp))
        try:
            app_id, pem = make_app(url, Path(tmp), lifetime, "bench-expiry")
            res = trio.run(load, url, app_id, pem, seconds, workers, None)
            params = {"seconds": seconds, "token_lifetime_s": lifetime, "workers": workers,
                      "refresh_at": "80% of the lifetime"}
            emit("token_refresh_failed_requests", res["failed_auth"], "requests", "0",
                 res["failed_auth"] == 0, params=params, refreshes=res["refreshes"],
                 requests=res["requests"], unauthorized_responses=res["unauthorized"],
                 other_failures=res["failed_other"])
            timings = res["timings"]
            app_id, pem = make_app(url, Path(tmp), 3600, "bench-revoked")
            every = 1.0 if args.quick else 5.0
            rev = trio.run(load, url, app_id, pem, seconds, workers, every)
            emit("revoked_token_failed_requests", rev["failed_auth"], "requests", "0",
                 rev["failed_auth"] == 0, params={**params, "token_lifetime_s": 3600,
                                                  "revoked_every_s": f"~{every:g}"},
                 refreshes=rev["refreshes"], requests=rev["requests"],
                 unauthorized_responses=rev["unauthorized"], retried=rev["retries"],
                 other_failures=rev["failed_other"])
            timings += rev["timings"]
            if timings:
                q = statistics.quantiles(timings, n=20) if len(timings) > 1 else timings * 19
                emit("token_refresh_ms", round(statistics.median(timings), 2), "ms",
                     "informational", None, params={"samples": len(timings)},
                     p95=round(q[18], 2))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
