"""A real llama.cpp inference server for tests: ``llama_cpp.server`` (llama-cpp-python).

It serves one GGUF model (in tests the one ``bzzz.testing.tinymodel`` writes) behind the
OpenAI-compatible API: ``GET /v1/models``, ``POST /v1/chat/completions`` (plain and SSE
streaming) and ``POST /v1/completions``.

    with LlamaServer(write_tiny_model(tmp_path / "tiny.gguf")) as llm:
        httpx.post(f"{llm.url}/v1/chat/completions", json={"model": llm.alias, ...})

The server runs in its own process group on a free loopback port, its output goes to a log
file (``.log_path``), and it is ready about a second after start. llama-cpp-python has no
binary wheel for this platform: ``bash .ci/llama-wheel.sh .venv`` builds one once into a
cache outside the repository and installs it; ``available()`` tells whether that happened.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# What `llama_cpp.server` imports beyond llama_cpp itself (the `[server]` extra).
SERVER_MODULES = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings", "yaml")
INSTALL_HINT = "bash .ci/llama-wheel.sh .venv builds and installs it"


def available() -> tuple[bool, str]:
    """Whether llama-cpp-python and its server's dependencies are importable here."""
    try:
        import llama_cpp  # noqa: F401  (loads the compiled library)
    except Exception as exc:  # ImportError, or OSError from a broken shared library
        return False, f"llama-cpp-python is not importable ({exc}); {INSTALL_HINT}"
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return False, f"llama-cpp-python[server] lacks {', '.join(missing)}; {INSTALL_HINT}"
    return True, ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LlamaServerError(RuntimeError):
    pass


class LlamaServer:
    """``python -m llama_cpp.server`` serving ``model_path`` as ``alias``; a context manager.

    ``start()`` returns once ``GET /v1/models`` lists the alias (or raises
    ``LlamaServerError`` with the log's tail if the server exits or is not up within
    ``startup_timeout`` seconds); ``stop()`` sends SIGTERM to its process group, then
    SIGKILL after ``stop_timeout`` seconds. Both also work with ``async with`` under trio
    (they then run in a worker thread).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        alias: str = "tiny",
        n_ctx: int = 2048,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        extra_args: tuple[str, ...] = (),
        python: str = sys.executable,
    ) -> None:
        self.model_path = Path(model_path)
        self.alias = alias
        self.n_ctx = n_ctx
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = tuple(extra_args)
        self.python = python
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path is not None else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise LlamaServerError("the server is not started")
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            self.python, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.alias,
            "--n_ctx", str(self.n_ctx),
            "--host", self.host,
            "--port", str(self.port),
            *self.extra_args,
        ]

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> "LlamaServer":
        if self.proc is not None:
            raise LlamaServerError("already started")
        if not self.model_path.is_file():
            raise LlamaServerError(f"no model at {self.model_path}")
        if self.port is None:
            self.port = free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        with open(self.log_path, "ab") as log:
            self.proc = proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, for stop()
            )
        try:
            self._wait_ready(proc)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    raise LlamaServerError(
                        f"llama_cpp.server exited with code {code} before serving "
                        f"{self.model_path.name}; the end of its log:\n{self.log_tail()}"
                    )
                try:
                    resp = client.get(f"{self.url}/v1/models")
                    if resp.status_code == 200:
                        ids = [m.get("id") for m in resp.json().get("data", [])]
                        if self.alias in ids:
                            return
                        last = f"/v1/models lists {ids}, not {self.alias!r}"
                    else:
                        last = f"/v1/models answered HTTP {resp.status_code}"
                except (httpx.TransportError, ValueError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise LlamaServerError(
                        f"llama_cpp.server did not serve {self.url}/v1/models within "
                        f"{self.startup_timeout:.0f} s ({last}); the end of its log:\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                self._signal(proc, signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self._signal(proc, signal.SIGKILL)
                    proc.wait()
        if self._own_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> "LlamaServer":
        import trio

        return await trio.to_thread.run_sync(self.start)

    async def __aexit__(self, *exc: object) -> None:
        import trio

        await trio.to_thread.run_sync(self.stop)
