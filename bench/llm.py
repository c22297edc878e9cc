"""LLM client benchmarks (bzzz/exec/llm.py). One JSON object per line:
{"bench": "llm", "metric", "value", "unit", "target", "ok", "params"}

  chunk_overhead_ms     what stream_chat adds per streamed chunk over a bare httpx streaming
                        read of the same stream (``aiter_bytes``, no parsing at all): p50 over
                        rounds of (stream_chat time - bare time) / chunks. The fake writes the
                        stream in 64 KB writes ("burst"), so the client is the bottleneck and the
                        difference is the client's own per-chunk work (line splitting, JSON,
                        on_delta, accumulating).
  chunk_cpu_overhead_ms the same with one write per chunk ("paced": a wake-up per chunk, as a
                        real model streams), measured as client CPU time (the server is another
                        process), p50 over rounds.
  first_token_added_ms  request to first text, stream_chat minus the bare read's request to
                        first body bytes, p50 over requests on a kept-alive connection.

Each for both kinds: Ollama's NDJSON (/api/chat) and OpenAI's SSE (/v1/chat/completions).
The fake (bzzz/testing/fakeollama.py, not Ollama) runs as its own process.
Run as `python bench/llm.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.exec.llm import Endpoint, stream_chat  # noqa: E402

HI = [{"role": "user", "content": "Say a few thousand words."}]


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "llm", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def start_fake() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "bzzz.testing.fakeollama"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("the fake Ollama did not start")
    return proc, url


def request(url: str, kind: str, model: str) -> tuple[str, dict]:
    if kind == "ollama":
        return url + "/api/chat", {"model": model, "messages": HI, "stream": True}
    return url + "/v1/chat/completions", {"model": model, "messages": HI, "stream": True,
                                          "stream_options": {"include_usage": True}}


async def bare(http: httpx.AsyncClient, url: str, kind: str, model: str) -> tuple[float, float]:
    """A bare streaming read: (seconds to the first body bytes, seconds in all)."""
    target, body = request(url, kind, model)
    t0 = time.perf_counter()
    first = None
    async with http.stream("POST", target, json=body) as resp:
        async for _ in resp.aiter_bytes():
            if first is None:
                first = time.perf_counter() - t0
    return first, time.perf_counter() - t0


async def client(http: httpx.AsyncClient, url: str, kind: str, model: str,
                 expect: int) -> tuple[float, float]:
    """stream_chat: (seconds to the first delta, seconds in all)."""
    t0 = time.perf_counter()
    first = None
    n = 0

    def on_delta(text: str) -> None:
        nonlocal first, n
        if first is None:
            first = time.perf_counter() - t0
        n += 1

    await stream_chat(http, Endpoint(url, kind=kind), model, HI, on_delta=on_delta)
    assert n == expect, (n, expect)
    return first, time.perf_counter() - t0


async def configure(http: httpx.AsyncClient, url: str, **doc) -> None:
    (await http.post(url + "/_fake/config", json=doc)).raise_for_status()


async def chunk_overhead(http, url, kind, chunks, rounds, mode) -> None:
    await configure(http, url, burst=(mode == "burst"))
    model = f"bench{chunks}"
    clock = time.perf_counter if mode == "burst" else time.process_time
    diffs, bare_s, ours_s = [], [], []
    for i in range(rounds + 1):
        order = (0, 1) if i % 2 else (1, 0)
        took = [0.0, 0.0]
        for which in order:
            c0 = clock()
            if which == 0:
                await bare(http, url, kind, model)
            else:
                await client(http, url, kind, model, chunks)
            took[which] = clock() - c0
        if i == 0:
            continue  # warm-up
        bare_s.append(took[0] / chunks * 1000)
        ours_s.append(took[1] / chunks * 1000)
        diffs.append((took[1] - took[0]) / chunks * 1000)
    value = round(statistics.median(diffs), 4)
    metric = "chunk_overhead_ms" if mode == "burst" else "chunk_cpu_overhead_ms"
    emit(metric, value, "ms/chunk", "<= 0.2 ms", value <= 0.2, kind=kind, mode=mode,
         chunks=chunks, rounds=rounds, clock="wall" if mode == "burst" else "client cpu",
         bare_ms_per_chunk=round(statistics.median(bare_s), 4),
         stream_chat_ms_per_chunk=round(statistics.median(ours_s), 4),
         baseline="httpx stream + aiter_bytes, no parsing")


async def first_token(http, url, kind, requests) -> None:
    await configure(http, url, burst=False)
    ours, theirs = [], []
    for i in range(requests + 5):
        order = (0, 1) if i % 2 else (1, 0)
        got = [0.0, 0.0]
        for which in order:
            if which == 0:
                got[0] = (await bare(http, url, kind, "short"))[0]
            else:
                got[1] = (await client(http, url, kind, "short", 5))[0]
        if i >= 5:  # warm-up done
            theirs.append(got[0] * 1000)
            ours.append(got[1] * 1000)
    added = round(statistics.median(ours) - statistics.median(theirs), 3)
    emit("first_token_added_ms", added, "ms", "<= 20 ms", added <= 20, kind=kind,
         requests=requests, bare_p50_ms=round(statistics.median(theirs), 3),
         stream_chat_p50_ms=round(statistics.median(ours), 3),
         baseline="httpx stream, first body bytes")


async def main_async(quick: bool) -> None:
    proc, url = start_fake()
    chunks = 2000 if quick else 5000
    paced = chunks // 4
    rounds = 5 if quick else 21
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            await configure(http, url, models={
                f"bench{chunks}": [f" w{i}" for i in range(chunks)],
                f"bench{paced}": [f" w{i}" for i in range(paced)],
                "short": ["Hello", ",", " world", "!", " Bye"]})
            for kind in ("ollama", "openai"):
                await chunk_overhead(http, url, kind, chunks, rounds, "burst")
                await chunk_overhead(http, url, kind, paced, rounds, "paced")
                await first_token(http, url, kind, 30 if quick else 200)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    args = p.parse_args()
    trio.run(main_async, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
