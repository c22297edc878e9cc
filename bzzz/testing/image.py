"""The agent's container image, built and run with podman for tests and benchmarks.

No image registry is reachable here, and containers cannot reach a package index, so:

- the base image is made locally by ``.ci/base-image.sh`` (Debian bookworm, debootstrap
  minbase, with python3 3.11, git and tini), cached as an OCI archive outside the repository
  (``~/.cache/bzzz/images``) and loaded into the test's podman (well under a second);
- the Python packages are wheels made on the host (``pip wheel``: this interpreter is
  3.11 like bookworm's, so its wheels fit) into a temporary build context, and the
  Dockerfile's builder stage installs them with ``--no-index``;
- the Dockerfile's ``FROM`` is pointed at the local base through ``BASE`` and
  ``BASE_DIGEST`` (the digest podman gives the loaded image).

    with PodmanService() as podman:
        built = build(podman)                  # Built(tag, seconds, size_bytes, ...)
        with AgentContainer(podman, built.tag, env={...}) as agent:
            agent.wait_healthy(10)

Everything runs against a :class:`bzzz.testing.podman.PodmanService` (its own storage), so
nothing here touches the machine's podman images.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .podman import PodmanError, PodmanService

ROOT = Path(__file__).resolve().parent.parent.parent
BASE_SCRIPT = ROOT / ".ci" / "base-image.sh"
BASE_TAG = "localhost/bzzz-base:bookworm"
TAG = "localhost/bzzz:test"
# what the build context holds (the rest of the repository is not the image's business)
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")


class ImageError(RuntimeError):
    pass


def base_archive(timeout: float = 600) -> Path:
    """The cached base image archive, built by .ci/base-image.sh when missing (~1 min)."""
    r = subprocess.run(["bash", str(BASE_SCRIPT)], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise ImageError(f"{BASE_SCRIPT.name} failed: {r.stderr.strip()[-800:]}")
    path = Path(r.stdout.strip().splitlines()[-1])
    if not path.is_file():
        raise ImageError(f"{BASE_SCRIPT.name} printed {path}, which is not a file")
    return path


def load_base(podman: PodmanService, archive: Path | None = None) -> tuple[str, str]:
    """Loads the base into ``podman``; returns (name, digest) for BASE and BASE_DIGEST."""
    archive = archive or base_archive()
    podman.podman("load", "-q", "-i", str(archive), timeout=120)
    digest = podman.podman("image", "inspect", "--format", "{{.Digest}}",
                           BASE_TAG).stdout.decode().strip()
    if not digest.startswith("sha256:"):
        raise ImageError(f"the base image {BASE_TAG} has no digest after loading: {digest!r}")
    return BASE_TAG, digest


def make_context(dest: Path, python: str = sys.executable) -> Path:
    """A build context in ``dest``: the files the Dockerfile copies, and wheels/ with Bzzz's
    dependencies, pip, setuptools and wheel (what the builder stage needs offline)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in CONTEXT_FILES:
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "bzzz", dest / "bzzz",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    wheels = dest / "wheels"
    wheels.mkdir(exist_ok=True)
    # the copy, not the repository: setuptools writes build/ into the source it builds
    r = subprocess.run([python, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                        "-w", str(wheels), str(dest), "pip", "setuptools>=77", "wheel"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise ImageError(f"pip wheel failed: {r.stderr.strip()[-800:]}")
    shutil.rmtree(dest / "build", ignore_errors=True)
    for egg in dest.glob("*.egg-info"):
        shutil.rmtree(egg, ignore_errors=True)
    return dest


@dataclass
class Built:
    tag: str
    seconds: float        # the `podman build` alone
    context_seconds: float  # wheels and context
    size_bytes: int
    base: str
    base_digest: str

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


def build(podman: PodmanService, tag: str = TAG, *, archive: Path | None = None,
          timeout: float = 900) -> Built:
    """Builds the repository's Dockerfile into ``podman`` as ``tag``."""
    base, digest = load_base(podman, archive)
    with tempfile.TemporaryDirectory(prefix="bzzz-image-ctx-") as tmp:
        t0 = time.monotonic()
        ctx = make_context(Path(tmp) / "ctx")
        t1 = time.monotonic()
        # --format docker: the OCI image format has no HEALTHCHECK
        r = subprocess.run(
            ["podman", "build", "--format", "docker", "--layers=false", "-t", tag,
             "--build-arg", f"BASE={base}", "--build-arg", f"BASE_DIGEST={digest}",
             "--build-arg", "PIP_OPTS=--no-index", str(ctx)],
            env=podman.env, capture_output=True, text=True, timeout=timeout)
        t2 = time.monotonic()
    if r.returncode != 0:
        raise ImageError(f"podman build failed: {(r.stdout + r.stderr).strip()[-1500:]}")
    return Built(tag, t2 - t1, t1 - t0, image_size(podman, tag), base, digest)


def cache_key() -> str:
    """A digest of everything the image is made from: the context's files, the base
    archive's name (its recipe version) and this interpreter (whose wheels go in)."""
    h = hashlib.sha256(f"{sys.version}|{BASE_SCRIPT.read_text()}".encode())
    files = [ROOT / n for n in CONTEXT_FILES] + sorted(
        p for p in (ROOT / "bzzz").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cached_archive() -> Path:
    return cache_dir() / f"bzzz-agent-{cache_key()}.tar"


def cache_dir() -> Path:
    return Path(os.environ.get("BZZZ_IMAGE_CACHE", Path.home() / ".cache" / "bzzz" / "images"))


def save_cached(podman: PodmanService, built: Built) -> Path:
    """Saves a built image where :func:`build_or_load` finds it (one is kept)."""
    dest = cached_archive()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".{os.getpid()}.part")
    # docker-archive keeps the HEALTHCHECK (the OCI format has none)
    podman.podman("save", "-q", "--format", "docker-archive", "-o", str(tmp), built.tag,
                  timeout=300)
    tmp.replace(dest)
    for old in dest.parent.glob("bzzz-agent-*.tar"):
        if old != dest:
            old.unlink(missing_ok=True)
    return dest


def build_or_load(podman: PodmanService, tag: str = TAG) -> tuple[Built, bool]:
    """The image from the cache when this source was built before (True), else built now."""
    archive = cached_archive()
    if archive.is_file():
        t0 = time.monotonic()
        podman.podman("load", "-q", "-i", str(archive), timeout=300)
        loaded = podman.podman("images", "-q", "--filter", f"reference={TAG}").stdout.strip()
        if loaded:
            if tag != TAG:
                podman.podman("tag", TAG, tag)
            return Built(tag, time.monotonic() - t0, 0.0, image_size(podman, tag), "", ""), True
    built = build(podman, tag)
    save_cached(podman, built)
    return built, False


def image_size(podman: PodmanService, tag: str) -> int:
    """The image's size in bytes, uncompressed (what `podman images` shows)."""
    out = podman.podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.decode()
    return int(out.strip())


def inspect(podman: PodmanService, tag: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(podman.podman("image", "inspect", tag).stdout)
    return found[0]


@dataclass
class AgentContainer:
    """``bzzz run`` (or another command) in the image, as a detached container.

    ``network`` is podman's ``--network`` (``host``: the host's loopback, where devhub runs);
    ``mounts`` are ``(host path, container path)`` pairs; ``group_add`` supplementary gids
    (the engine socket's group)."""

    podman: PodmanService
    image: str
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[tuple[str, str]] = field(default_factory=list)
    network: str = "host"
    command: list[str] = field(default_factory=list)
    group_add: list[int] = field(default_factory=list)
    name: str = ""
    id: str = ""

    def __enter__(self) -> "AgentContainer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def start(self) -> None:
        self.name = self.name or f"bzzz-agent-{time.monotonic_ns()}"
        args = ["run", "-d", "--name", self.name, "--network", self.network]
        for k, v in self.env.items():
            args += ["-e", f"{k}={v}"]
        for src, dst in self.mounts:
            args += ["-v", f"{src}:{dst}"]
        for gid in self.group_add:
            args += ["--group-add", str(gid)]
        self.id = self.podman.podman(*args, self.image, *self.command).stdout.decode().strip()

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.podman.podman(
            "inspect", "--format", "{{json .State}}", self.id).stdout)
        return state

    def running(self) -> bool:
        return bool(self.state().get("Running"))

    def exec(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "exec", self.id, *cmd], env=self.podman.env,
                              capture_output=True, text=True, timeout=60)

    def healthcheck(self) -> bool:
        """One run of the image's HEALTHCHECK (`podman healthcheck run`): True on healthy."""
        r = subprocess.run(["podman", "healthcheck", "run", self.id], env=self.podman.env,
                           capture_output=True, text=True, timeout=30)
        return r.returncode == 0

    def wait_healthy(self, seconds: float) -> float:
        """Seconds until the HEALTHCHECK passes; ImageError (with the log) on timeout."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if self.healthcheck():
                return time.monotonic() - t0
            if not self.running():
                raise ImageError(f"the container exited: {self.logs()[-2000:]}")
            time.sleep(0.1)
        raise ImageError(f"no healthy answer within {seconds}s: {self.logs()[-2000:]}")

    def stop(self, timeout: float = 20) -> tuple[int, float]:
        """`podman stop` (the image's STOPSIGNAL, then SIGKILL after ``timeout``): returns
        the exit code and the seconds it took."""
        t0 = time.monotonic()
        self.podman.podman("stop", "-t", str(int(timeout)), self.id, timeout=timeout + 30)
        took = time.monotonic() - t0
        return int(self.state()["ExitCode"]), took

    def logs(self) -> str:
        try:
            r = self.podman.podman("logs", self.id)
        except PodmanError as exc:
            return str(exc)
        return (r.stdout + r.stderr).decode(errors="replace")

    def remove(self) -> None:
        if self.id:
            try:
                self.podman.podman("rm", "-f", "-t", "0", self.id)
            except PodmanError:
                pass


def get_healthz(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            status: int = r.status
            return status == 200
    except (urllib.error.URLError, OSError):
        return False
