"""A log directory: append-only files, group commit, crash recovery, verification.

Files in the directory:

- ``log``: the source of truth, append-only frames ``u32 length | u8 kind | payload |
  u32 crc32(kind | payload)``. Kinds: a header (magic and the writer's public key) first,
  then blocks, each batch of blocks followed by its signed head (``u64 length | u64 fork |
  32-byte tree hash | 64-byte signature``). One ``append`` is one ``write`` and one ``fsync``:
  when it returns, the batch and its head are on disk (durable when acknowledged).
- ``tree`` (40 bytes per flat-tree node: ``u64 size | hash``) and ``index`` (``u64`` frame
  offset per block): caches for reads and proofs, rebuilt from ``log`` whenever they are
  behind; ``checkpoint`` says up to which length they were fsynced.
- ``secret`` (mode 0600): only for logs made by ``bzzz log append``; an agent signs with its
  node identity instead.

Recovery on open: scan ``log`` from the checkpoint, recomputing the tree and checking each
head's signature. A crash can only tear the last write: whatever follows the last valid
head is dropped (it was never acknowledged). A bad frame followed by valid ones is corruption,
not a torn tail: opening fails and names the first bad block; nothing is truncated.
Every read checks the block against its leaf hash, so corrupt data is never served.
"""

from __future__ import annotations

from ..errors import BzzzError
import fcntl
import logging
import os
import struct
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fsutil import fsync_dir, write_synced
from . import flat
from .crypto import Signer, Verifier, leaf_hash
from .tree import Node, Tree

log = logging.getLogger("bzzz.hyperlog")

MAGIC = b"BZZZLOG1"
K_HEADER, K_BLOCK, K_HEAD = 0, 1, 2
_FRAME = struct.Struct("<IB")
_KIND_CRC = {k: zlib.crc32(bytes([k])) for k in (0, 1, 2)}  # running CRC after the kind byte
_CRC = struct.Struct("<I")
_HEAD = struct.Struct("<QQ32s64s")
_NODE = struct.Struct("<Q32s")
_CHECKPOINT = struct.Struct("<QQ32sI")
MAX_BLOCK = 8 * 1024 * 1024
NODE_FLUSH = 2048  # tree nodes kept in memory before one coalesced write to the cache
CHECKPOINT_EVERY = 16384  # blocks between checkpoints of the caches


class LogError(BzzzError):
    """A log that cannot be opened or written as asked."""


class LogCorrupt(LogError):
    def __init__(self, block: int | None, why: str) -> None:
        where = f"block {block}" if block is not None else "header"
        super().__init__(f"{where}: {why}")
        self.block = block
        self.why = why


@dataclass(frozen=True)
class Head:
    length: int
    fork: int
    tree_hash: bytes
    signature: bytes

    def pack(self) -> bytes:
        return _HEAD.pack(self.length, self.fork, self.tree_hash, self.signature)

    @classmethod
    def unpack(cls, data: bytes) -> "Head":
        return cls(*_HEAD.unpack(data))


def _frame(kind: int, payload: bytes) -> bytes:
    body = bytes([kind]) + payload
    return _FRAME.pack(len(payload), kind) + payload + _CRC.pack(zlib.crc32(body))


def _read_frame(buf: bytes | memoryview, pos: int) -> tuple[int, int, int] | None:
    """(kind, payload start, next frame) of a whole, intact frame at ``pos``; else None."""
    if pos + 5 > len(buf):
        return None
    size, kind = _FRAME.unpack_from(buf, pos)
    end = pos + 5 + size + 4
    if size > MAX_BLOCK + 64 or end > len(buf):
        return None
    (crc,) = _CRC.unpack_from(buf, end - 4)
    if zlib.crc32(buf[pos + 4: end - 4]) != crc:
        return None
    return kind, pos + 5, end


def _start_log(p: Path, public_key: bytes, mode: int) -> None:
    """A new log file: the header frame (magic and the writer's public key), on disk."""
    p.mkdir(parents=True, exist_ok=True)
    if not (p / "log").exists() or (p / "log").stat().st_size == 0:
        write_synced(p / "log", _frame(K_HEADER, MAGIC + public_key), mode=mode)
        fsync_dir(p)


def _read_header(fd: int) -> tuple[bytes, int]:
    """(the writer's public key, where the first block frame starts)."""
    first = os.pread(fd, 5 + len(MAGIC) + 32 + 4, 0)
    got = _read_frame(first, 0)
    if got is None or got[0] != K_HEADER or first[5:5 + len(MAGIC)] != MAGIC:
        raise LogCorrupt(None, "not a Bzzz log (bad header)")
    return bytes(first[5 + len(MAGIC): 5 + len(MAGIC) + 32]), got[2]


class _Scanner:
    """Intact frames from ``pos`` on, read in large chunks; stops at the first bad or
    incomplete one (``bad_at``) or at the end. ``pos`` is the end of the last frame yielded."""

    CHUNK = 4 * 1024 * 1024

    def __init__(self, fd: int, pos: int, size: int) -> None:
        self.fd, self.pos, self.size = fd, pos, size
        self.bad_at: int | None = None

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        buf, base, cur = b"", self.pos, 0
        while base + cur < self.size:
            got = _read_frame(buf, cur)
            if got is None and base + len(buf) < self.size:
                want = self.CHUNK
                if len(buf) - cur >= 4:
                    (need,) = struct.unpack_from("<I", buf, cur)
                    want = max(want, min(need, MAX_BLOCK + 64) + 9)
                buf = buf[cur:] + os.pread(self.fd, want, base + len(buf))
                base, cur = base + cur, 0
                got = _read_frame(buf, cur)
            if got is None:
                self.bad_at = base + cur
                return
            kind, start, nxt = got
            at = base + cur
            cur = nxt
            self.pos = base + nxt
            yield at, kind, bytes(buf[start:nxt - 4])


_HEAD_FRAME = _FRAME.pack(_HEAD.size, K_HEAD)


def _last_head_before(fd: int, pos: int) -> Head | None:
    """The head frame that ends at ``pos`` (a checkpoint is always taken after one)."""
    back = 5 + _HEAD.size + 4
    if pos < back:
        return None
    raw = os.pread(fd, back, pos - back)
    got = _read_frame(raw, 0)
    if got is None or got[0] != K_HEAD:
        return None
    return Head.unpack(raw[5:5 + _HEAD.size])


def _valid_head_after(fd: int, bad_at: int, size: int) -> bool:
    """Whether an intact head frame follows a bad frame: then the damage is not a torn last
    write (which nothing follows) but corruption in the middle."""
    pos = bad_at + 1
    step = 1024 * 1024
    while pos < size:
        raw = os.pread(fd, step + len(_HEAD_FRAME) + _HEAD.size + 4, pos)
        i = raw.find(_HEAD_FRAME)
        while 0 <= i < step:
            if _read_frame(raw, i) is not None:
                return True
            i = raw.find(_HEAD_FRAME, i + 1)
        pos += step
    return False


class Hyperlog:
    """One log. ``open`` it; a writer has a signer (``seed``), a reader does not."""

    def __init__(self, path: Path, public_key: bytes, signer: Signer | None) -> None:
        self.path = path
        self.verifier = Verifier(public_key)
        self.signer = signer
        self.key = self.verifier.key
        self.public_key = public_key
        self.tree = Tree()
        self.head: Head | None = None
        self.offsets = array("Q")
        self._log_fd = -1
        self._tree_fd = -1
        self._lock_fd = -1
        self.replica = False  # ingests verified data from others instead of signing
        self.listeners: list[Callable[[], object]] = []  # called (from the writing thread) after each new head
        self._sealed = 0  # end of the last head frame in ``log`` (a replica may be past it)
        self._end = 0  # end of the last acknowledged frame in ``log``
        self._dirty: dict[int, bytes] = {}
        self._cached = 0  # length up to which the caches are fsynced
        self.recovered_bytes = 0  # unacknowledged tail dropped on open

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(cls, path: str | os.PathLike[str], seed: bytes) -> "Hyperlog":
        """Open the log in ``path`` for writing, creating it if missing."""
        p = Path(path)
        _start_log(p, Signer(seed).public_key, mode=0o600)
        return cls.open(p, seed, writable=True)

    @classmethod
    def create_replica(cls, path: str | os.PathLike[str], public_key: bytes) -> "Hyperlog":
        """Open a copy of someone else's log for ingesting verified data, creating it."""
        p = Path(path)
        _start_log(p, public_key, mode=0o644)
        log = cls._open(p, None, replica=True)
        if log.public_key != public_key:
            log.close()
            raise LogError(f"{p}: holds the log of another key")
        return log

    @classmethod
    def open(cls, path: str | os.PathLike[str], seed: bytes | None = None,
             writable: bool = False) -> "Hyperlog":
        """Open an existing log. Read-only unless ``writable`` (then the signing key is
        ``seed`` or the directory's ``secret``): a reader never changes a file, so it can
        look at a log a live agent is writing."""
        p = Path(path)
        if not (p / "log").exists():
            raise LogError(f"{p}: no log here")
        if writable and seed is None:
            if not (p / "secret").exists():
                raise LogError(f"{p}: no signing key for this log")
            seed = (p / "secret").read_bytes()[:32]
        log = cls._open(p, Signer(seed) if writable and seed is not None else None)
        if log.signer is not None and log.signer.public_key != log.public_key:
            log.close()
            raise LogError(f"{p}: the log belongs to another key")
        return log

    @classmethod
    def _open(cls, p: Path, signer: Signer | None, replica: bool = False) -> "Hyperlog":
        writer = signer is not None or replica
        fd = os.open(p / "log", os.O_RDWR if writer else os.O_RDONLY)
        try:
            public_key, header_end = _read_header(fd)
        except BaseException:  # whatever stopped the opening, the descriptor is not kept
            os.close(fd)
            raise
        log = cls(p, public_key, signer)
        log.replica = replica
        log._log_fd = fd
        if writer:
            log._lock_fd = os.open(p / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(log._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                log.close()
                raise LogError(f"{p}: the log is open for writing elsewhere") from exc
            log._tree_fd = os.open(p / "tree", os.O_RDWR | os.O_CREAT, 0o644)
        elif (p / "tree").exists():
            log._tree_fd = os.open(p / "tree", os.O_RDONLY)
        try:
            log._recover(header_end)
        except BaseException:  # whatever stopped the opening, the files are not kept open
            log.close()
            raise
        return log

    def _node_from_cache(self, index: int) -> Node | None:
        packed = self._dirty.get(index)  # .get: a flush may run in another thread
        if packed is not None:
            size, digest = _NODE.unpack(packed)
            return Node(index, size, digest)
        if self._tree_fd < 0:
            return None
        raw = os.pread(self._tree_fd, _NODE.size, index * _NODE.size)
        if len(raw) != _NODE.size:
            return None
        size, digest = _NODE.unpack(raw)
        return Node(index, size, digest)

    def _load_checkpoint(self, header_end: int) -> tuple[int, int]:
        """(length, log offset) the caches can be trusted up to; (0, header end) if none."""
        try:
            raw = (self.path / "checkpoint").read_bytes()
            length, offset, digest, crc = _CHECKPOINT.unpack(raw)
            if zlib.crc32(raw[:-4]) != crc:
                raise ValueError
            index = (self.path / "index").read_bytes()[: 8 * length]
            if len(index) != 8 * length:
                raise ValueError
            cached = [self._node_from_cache(i) for i in flat.full_roots(2 * length)]
            roots = [r for r in cached if r is not None]
            if len(roots) != len(cached):
                raise ValueError
            tree = Tree(length, roots)
            if tree.hash() != digest:
                raise ValueError
        except (OSError, ValueError, struct.error):
            return 0, header_end
        self.tree = tree
        self.offsets = array("Q")
        self.offsets.frombytes(index)
        self._cached = length
        return length, offset

    def _recover(self, header_end: int) -> None:
        pos = self._load_checkpoint(header_end)[1]
        size = os.fstat(self._log_fd).st_size
        self._end = pos
        tree = self.tree.copy()
        new_nodes: list[Node] = []
        offsets = array("Q")
        scan = _Scanner(self._log_fd, pos, size)
        for at, kind, payload in scan:
            if kind == K_BLOCK:
                offsets.append(at)
                tree.append(payload, new_nodes)
                continue
            if kind != K_HEAD:
                scan.bad_at = at
                break
            head = Head.unpack(payload)
            if head.length != tree.length or head.tree_hash != tree.hash():
                scan.bad_at = at
                break
            # a head that fits: everything up to here was acknowledged (its signature is
            # checked once, for the last head: it commits to the whole tree)
            self.tree, self.head = tree.copy(), head
            self.offsets.extend(offsets)
            offsets = array("Q")
            for n in new_nodes:
                self._dirty[n.index] = _NODE.pack(n.size, n.hash)
            new_nodes = []
            self._end = scan.pos
        if self.head is None and self.tree.length:
            self.head = _last_head_before(self._log_fd, pos)
        h = self.head
        if h is not None and not self.verifier.verify_head(h.tree_hash, h.length, h.fork,
                                                           h.signature):
            raise LogCorrupt(max(0, h.length - 1), "the last signed head does not verify")
        if scan.bad_at is not None and _valid_head_after(self._log_fd, scan.bad_at, size):
            raise LogCorrupt(len(self.offsets), f"damaged data at byte {scan.bad_at} of the "
                             "log file with valid data after it (see `bzzz log verify`)")
        self._sealed = self._end
        if not self._writes:
            return  # a reader changes nothing (a writer may be appending right now)
        if self._end < size:  # a torn, never acknowledged last write
            self.recovered_bytes = size - self._end
            os.ftruncate(self._log_fd, self._end)
            os.fsync(self._log_fd)
        self._flush_nodes()

    # ------------------------------------------------------------------ writing

    @property
    def length(self) -> int:
        return self.tree.length

    @property
    def writable(self) -> bool:
        return self.signer is not None

    @property
    def _writes(self) -> bool:
        return self.signer is not None or self.replica

    def ingest(self, blocks: list[bytes], head: Head | None = None,
               leaves: list[bytes] | None = None) -> None:
        """A replica's append: blocks the caller verified against a signed head, then, once
        the log reaches that head's length, the head itself (one fsync: durable from then
        on; blocks past the last head are dropped if the process dies before it)."""
        if not self.replica:
            raise LogError("only a replica ingests")
        tree = self.tree.copy()
        nodes: list[Node] = []
        parts: list[bytes] = []
        offsets = array("Q")
        pos = self._end
        for k, block in enumerate(blocks):
            frame = _frame(K_BLOCK, bytes(block))
            offsets.append(pos)
            pos += len(frame)
            parts.append(frame)
            tree.append(block, nodes, leaves[k] if leaves is not None else None)
        if head is not None:
            if head.length != tree.length or head.tree_hash != tree.hash() or \
                    not self.verifier.verify_head(head.tree_hash, head.length, head.fork,
                                                  head.signature):
                raise LogError(f"the head at length {head.length} does not fit the data")
            parts.append(_frame(K_HEAD, head.pack()))
        data = b"".join(parts)
        if os.pwrite(self._log_fd, data, self._end) != len(data):
            os.ftruncate(self._log_fd, self._end)
            raise LogError("short write to the log")
        if head is not None:
            os.fsync(self._log_fd)
        self._end += len(data)
        self.tree = tree
        self.offsets.extend(offsets)
        for n in nodes:
            self._dirty[n.index] = _NODE.pack(n.size, n.hash)
        if head is not None:
            self.head, self._sealed = head, self._end
            if len(self._dirty) >= NODE_FLUSH:
                self._flush_nodes()
            if self.tree.length - self._cached >= CHECKPOINT_EVERY:
                self.checkpoint()
            self._grew()  # a replica's followers wake as an author's do

    def head_after(self, i: int, max_frames: int = 65536) -> Head | None:
        """The first signed head stored after block ``i`` (the end of its batch), if it is
        within ``max_frames`` frames: lets a reader seal a long copy in steps."""
        head = self.head
        if head is None or not 0 <= i < head.length:
            return None
        end = self._sealed if self.replica else self._end
        scan = _Scanner(self._log_fd, self.offsets[i], end)
        for n, (_, kind, payload) in enumerate(scan):
            if kind == K_HEAD and len(payload) == _HEAD.size:
                found = Head.unpack(payload)
                return found if i < found.length <= head.length else None
            if n >= max_frames:
                break
        return None

    def unsealed(self) -> int:
        """Blocks ingested past the last head (verified, not yet durable)."""
        return self.tree.length - (self.head.length if self.head else 0)

    def tree_hash_at(self, length: int) -> bytes:
        """The tree hash of the first ``length`` blocks, from stored nodes."""
        from .crypto import tree_hash
        if length > self.tree.length:
            raise LogError(f"no tree at length {length} (the log has {self.tree.length})")
        return tree_hash((n.index, n.size, n.hash) for n in self.roots_at(length))

    def roots_at(self, length: int) -> list[Node]:
        return [self.node(i) for i in flat.full_roots(2 * length)]

    def append(self, blocks: list[bytes]) -> Head:
        """Append a batch and sign its head: one write, one fsync. Durable on return."""
        if self.signer is None:
            raise LogError("this log is open read-only (no signing key)")
        if not blocks:
            if self.head is None:
                raise LogError("nothing to append")
            return self.head
        tree = self.tree.copy()
        nodes: list[Node] = []
        parts: list[bytes] = []
        offsets = array("Q")
        pos = self._end
        for block in blocks:
            if not isinstance(block, (bytes, bytearray, memoryview)):
                raise LogError("a block is bytes")
            if len(block) > MAX_BLOCK:
                raise LogError(f"a block is at most {MAX_BLOCK} bytes")
            frame = _frame(K_BLOCK, bytes(block))
            offsets.append(pos)
            pos += len(frame)
            parts.append(frame)
            tree.append(bytes(block), nodes)
        digest = tree.hash()
        head = Head(tree.length, 0, digest, self.signer.sign_head(digest, tree.length, 0))
        parts.append(_frame(K_HEAD, head.pack()))
        data = b"".join(parts)
        written = os.pwrite(self._log_fd, data, self._end)
        if written != len(data):
            os.ftruncate(self._log_fd, self._end)
            raise LogError("short write to the log")
        os.fsync(self._log_fd)
        # acknowledged
        self._end += len(data)
        self.tree, self.head = tree, head
        self.offsets.extend(offsets)
        for n in nodes:
            self._dirty[n.index] = _NODE.pack(n.size, n.hash)
        if len(self._dirty) >= NODE_FLUSH:
            self._flush_nodes()
        if self.tree.length - self._cached >= CHECKPOINT_EVERY:
            self.checkpoint()  # bounds the scan after a crash
        self._grew()
        return head

    def _grew(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # a listener's trouble is not the log's
                log.debug("a log listener failed", exc_info=True)

    def _flush_nodes(self) -> None:
        if not self._dirty:
            return
        # one write per run of consecutive nodes (a batch's nodes are mostly one run)
        run_start, prev = -1, -2
        parts: list[bytes] = []
        for index in sorted(self._dirty):
            if index != prev + 1 and parts:
                os.pwrite(self._tree_fd, b"".join(parts), run_start * _NODE.size)
                parts = []
            if not parts:
                run_start = index
            parts.append(self._dirty[index])
            prev = index
        if parts:
            os.pwrite(self._tree_fd, b"".join(parts), run_start * _NODE.size)
        self._dirty.clear()

    def checkpoint(self) -> None:
        """Persist the caches so the next open scans only what follows."""
        if self._tree_fd < 0 or self.tree.length == self._cached and \
                (self.path / "checkpoint").exists():
            return
        self._flush_nodes()
        os.fsync(self._tree_fd)
        with open(self.path / "index", "r+b" if (self.path / "index").exists() else "wb") as fh:
            fh.seek(8 * self._cached)
            fh.write(self.offsets[self._cached:].tobytes())
            fh.truncate(8 * len(self.offsets))
            fh.flush()
            os.fsync(fh.fileno())
        body = _CHECKPOINT.pack(self.tree.length, self._end, self.tree.hash(), 0)[:-4]
        write_synced(self.path / "checkpoint", body + _CRC.pack(zlib.crc32(body)))
        self._cached = self.tree.length

    def close(self) -> None:
        if self.replica and self._log_fd >= 0 and self._end > self._sealed:
            # unsealed blocks are not acknowledged: do not let a checkpoint cover them
            self._drop_unsealed()
        if self._writes and self._log_fd >= 0 and self._tree_fd >= 0:
            try:
                self.checkpoint()
            except OSError:
                pass  # the caches are rebuilt from the log next time
        for fd in (self._log_fd, self._tree_fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._log_fd = self._tree_fd = self._lock_fd = -1

    def _drop_unsealed(self) -> None:
        length = self.head.length if self.head else 0
        os.ftruncate(self._log_fd, self._sealed)
        self._end = self._sealed
        del self.offsets[length:]
        # nodes of the dropped blocks stay in the cache until overwritten: lookups never
        # reach past the length
        self.tree = Tree(length, self.roots_at(length)) if length else Tree()

    def __enter__(self) -> "Hyperlog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def node(self, index: int) -> Node:
        n = self._node_from_cache(index)
        if n is None or index > 2 * self.tree.length:
            raise LogError(f"no tree node {index}")
        return n

    def get(self, i: int) -> bytes:
        """Block ``i``, checked against its leaf hash: corrupt data is never served."""
        if not 0 <= i < self.tree.length:
            raise IndexError(f"block {i} of a log of {self.tree.length}")
        pos = self.offsets[i]
        raw = os.pread(self._log_fd, 5, pos)
        if len(raw) != 5:
            raise LogCorrupt(i, "missing from the log file")
        size, kind = _FRAME.unpack(raw)
        data = os.pread(self._log_fd, size, pos + 5) if size <= MAX_BLOCK else b""
        if kind != K_BLOCK or len(data) != size or leaf_hash(data) != self.node(2 * i).hash:
            raise LogCorrupt(i, "stored bytes do not match the tree")
        return data

    def read_range(self, start: int, end: int) -> list[bytes]:
        """Blocks ``start`` .. ``end - 1`` in one read, each checked against its frame's
        checksum rather than hashed again (for readers of verified copies, such as the
        monitor's indexer; :meth:`get` checks the tree, ``verify_dir`` everything)."""
        if not 0 <= start <= end <= self.tree.length:
            raise IndexError(f"blocks {start}..{end} of a log of {self.tree.length}")
        if start == end:
            return []
        first, last = self.offsets[start], self.offsets[end - 1]
        head = os.pread(self._log_fd, _FRAME.size, last)
        if len(head) != _FRAME.size:
            raise LogCorrupt(end - 1, "missing from the log file")
        total = last + _FRAME.size + _FRAME.unpack(head)[0] + _CRC.size - first
        buf = os.pread(self._log_fd, total, first)
        out = []
        for i in range(start, end):
            pos = self.offsets[i] - first
            if pos + _FRAME.size > len(buf):
                raise LogCorrupt(i, "missing from the log file")
            size, kind = _FRAME.unpack_from(buf, pos)
            body = pos + _FRAME.size
            if kind != K_BLOCK or body + size + _CRC.size > len(buf) or \
                    zlib.crc32(buf[body:body + size], _KIND_CRC[K_BLOCK]) != \
                    _CRC.unpack_from(buf, body + size)[0]:
                raise LogCorrupt(i, "stored bytes do not match their checksum")
            out.append(buf[body:body + size])
        return out

    def roots(self) -> list[Node]:
        return list(self.tree.roots)


# ---------------------------------------------------------------------- checking and export

@dataclass
class Report:
    ok: bool
    length: int  # blocks verified
    first_bad: int | None = None
    error: str | None = None
    head: Head | None = None
    public_key: bytes = b""
    key: bytes = b""


def verify_dir(path: str | os.PathLike[str]) -> Report:
    """Check a whole log from its first byte: every frame, every block against the tree
    recomputed from scratch, every head's signature, and the caches against the log.
    Names the first bad block. Reads only; never repairs."""
    p = Path(path)
    try:
        fd = os.open(p / "log", os.O_RDONLY)
    except OSError as exc:
        return Report(False, 0, None, f"{p / 'log'}: {exc.strerror}")
    try:
        try:
            public_key, header_end = _read_header(fd)
        except LogCorrupt as exc:
            return Report(False, 0, None, exc.why)
        verifier = Verifier(public_key)
        size = os.fstat(fd).st_size
        tree, verified, head = Tree(), 0, None
        nodes: list[Node] = []
        scan = _Scanner(fd, header_end, size)
        cache = p / "tree"
        cache_fd = os.open(cache, os.O_RDONLY) if cache.exists() else -1
        try:
            for _at, kind, payload in scan:
                if kind == K_BLOCK:
                    nodes.clear()
                    tree.append(payload, nodes)
                    if cache_fd >= 0:
                        raw = os.pread(cache_fd, _NODE.size, nodes[0].index * _NODE.size)
                        if len(raw) == _NODE.size and raw != _NODE.pack(nodes[0].size, nodes[0].hash):
                            return Report(False, verified, tree.length - 1,
                                          f"block {tree.length - 1}: the tree cache disagrees "
                                          "with the log (delete `tree` and `checkpoint` to rebuild)",
                                          head, public_key, verifier.key)
                    continue
                h = Head.unpack(payload) if kind == K_HEAD and len(payload) == _HEAD.size else None
                if h is None or h.length != tree.length or h.tree_hash != tree.hash() or \
                        not verifier.verify_head(h.tree_hash, h.length, h.fork, h.signature):
                    return Report(False, verified, verified,
                                  f"block {verified}: the signed head at length {tree.length} "
                                  "does not match the blocks before it", head, public_key,
                                  verifier.key)
                head, verified = h, tree.length
        finally:
            if cache_fd >= 0:
                os.close(cache_fd)
        if scan.bad_at is not None:
            return Report(False, verified, tree.length,
                          f"block {tree.length}: damaged data at byte {scan.bad_at} of the log file",
                          head, public_key, verifier.key)
        if tree.length != verified:
            return Report(False, verified, verified,
                          f"block {verified}: blocks without a signed head at the end",
                          head, public_key, verifier.key)
        return Report(True, verified, None, None, head, public_key, verifier.key)
    finally:
        os.close(fd)


def export(log: Hyperlog) -> dict[str, Any]:
    """The CONTRACT.md export: everything Hypercore's code needs to verify the log."""
    head = log.head
    return {"public_key": log.public_key.hex(), "key": log.key.hex(), "length": log.length,
            "fork": head.fork if head else 0,
            "tree_hash": head.tree_hash.hex() if head else log.tree.hash().hex(),
            "signature": head.signature.hex() if head else "",
            "blocks": [log.get(i).hex() for i in range(log.length)]}


def read_entries(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every entry of the log in ``path`` (read-only; blocks that are not entries skipped)."""
    from .entries import decode
    with Hyperlog.open(path) as log:
        return [e for e in (decode(log.get(i)) for i in range(log.length)) if e is not None]
