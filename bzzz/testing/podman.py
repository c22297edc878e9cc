"""A podman Docker-compatible service for tests and benchmarks, and a busybox task image.

Everything lives in one temporary directory: podman's configuration (``CONTAINERS_CONF``,
``CONTAINERS_STORAGE_CONF``: nothing under /etc is read or written), its image storage, its
runtime state, file locks (not the machine-wide shared-memory lock) and the service's socket.
So a test session neither sees nor disturbs other podman users on the machine, and closing
the service removes all of it. Needs root, podman, runc and busybox (Debian: podman, runc,
busybox-static; see .ci/system-deps.sh).

    with PodmanService() as podman:
        podman.docker_host   # "unix:///tmp/.../podman.sock"
        podman.image         # "localhost/bzzz-task:busybox"

Start-up: about a second (the service answers ``/_ping`` in ~0.3 s; importing the busybox
image takes ~0.5 s).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

IMAGE = "localhost/bzzz-task:busybox"
# what busybox lacks in some builds (Debian's has no nohup): a shell stand-in
STAND_INS = {"nohup": "#!/bin/sh\n# nohup: ignore hangups, then run the command\ntrap '' HUP\nexec \"$@\"\n"}

def available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "podman tests run as root (rootless podman needs subuid set-up)"
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed (apt-get install podman runc)"
    if busybox() is None:
        return False, "a static busybox is not installed (apt-get install busybox-static)"
    return True, ""


def busybox() -> str | None:
    """A statically linked busybox (Debian's busybox-static), which runs in an empty image."""
    for p in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox")):
        if p and os.access(p, os.X_OK):
            with open(p, "rb") as fh:
                head = fh.read(4096)
            if b"ld-linux" not in head and b"ld-musl" not in head:  # no ELF interpreter
                return p
    return None


class PodmanError(RuntimeError):
    pass


class PodmanService:
    def __init__(self, image: str | None = IMAGE, root: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bzzz-podman-", dir=root))
        self.socket = self.dir / "podman.sock"
        self.docker_host = f"unix://{self.socket}"
        self.image = image
        self.proc: subprocess.Popen[bytes] | None = None
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        hard = 1048576 if hard == resource.RLIM_INFINITY else hard
        (self.dir / "containers.conf").write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={hard}:{hard}", "nproc=32768:32768"]\n'
            "[engine]\n"
            'runtime = "runc"\n'  # crun cannot handle a mixed cgroup hierarchy
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            'lock_type = "file"\n'
            f'tmp_dir = "{self.dir}/libpod"\n')
        (self.dir / "storage.conf").write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{self.dir}/storage"\n'
            f'runroot = "{self.dir}/run"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.dir / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(self.dir / "storage.conf")}
        self.env.pop("DOCKER_HOST", None)

    def __enter__(self) -> "PodmanService":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def podman(self, *args: str, input: bytes | None = None, timeout: float = 60
               ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(["podman", *args], env=self.env, input=input,
                                capture_output=True, timeout=timeout)
        if result.returncode != 0:
            raise PodmanError(f"podman {' '.join(args)}: {result.stderr.decode().strip()}")
        return result

    def start(self, timeout: float = 20) -> None:
        log = open(self.dir / "service.log", "wb")
        self.proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", self.docker_host], env=self.env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.dir)  # conmon writes an ``oom`` file into its working directory
        log.close()
        if self.image:
            self.build_busybox(self.image)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise PodmanError("podman system service did not start: "
                                  + (self.dir / "service.log").read_text()[-500:])
            time.sleep(0.05)

    def ping(self) -> bool:
        import http.client
        import socket

        class _Conn(http.client.HTTPConnection):
            def connect(conn) -> None:  # noqa: N805
                conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.sock.settimeout(2)
                conn.sock.connect(str(self.socket))

        if not self.socket.exists():
            return False
        try:
            conn = _Conn("localhost")
            conn.request("GET", "/_ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def build_busybox(self, tag: str = IMAGE) -> None:
        """A 2 MB image from the host's static busybox, with a link for each applet."""
        src = busybox()
        if src is None:
            raise PodmanError("busybox is not installed (apt-get install busybox-static)")
        root = self.dir / "busybox-root"
        (root / "bin").mkdir(parents=True, exist_ok=True)
        for d in ("tmp", "etc", "proc", "sys", "dev", "work"):
            (root / d).mkdir(exist_ok=True)
        (root / "tmp").chmod(0o1777)
        shutil.copy2(src, root / "bin" / "busybox")
        applets = subprocess.run([src, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:  # what `busybox --install -s` does, inside the image root
            link = root / "bin" / applet
            if applet != "busybox" and not link.exists():
                link.symlink_to("busybox")
        for name, script in STAND_INS.items():
            if name not in applets:
                (root / "bin" / name).write_text(script)
                (root / "bin" / name).chmod(0o755)
        (root / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
        (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True,
                             check=True).stdout
        self.podman("import", "-", tag, input=tar)

    def containers(self, label: str | None = None) -> list[str]:
        """Ids of the containers (running or not), with ``label`` (``k=v``) if given."""
        args = ["ps", "-a", "-q", "--no-trunc"] + (["--filter", f"label={label}"] if label else [])
        return self.podman(*args).stdout.decode().split()

    def close(self) -> None:
        if self.proc is not None:
            try:
                ids = self.containers()
                if ids:
                    self.podman("rm", "-f", "-t", "0", *ids)
            except (PodmanError, subprocess.TimeoutExpired):
                pass
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        # podman's overlay driver bind-mounts its storage on itself; unmount what is left
        with open("/proc/self/mounts") as fh:
            mounts = [line.split()[1] for line in fh if str(self.dir) in line.split()[1]]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
