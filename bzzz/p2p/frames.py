"""One length-prefixed frame read from a peer's stream: a 4-byte big-endian length, then that
many bytes. The goodbye stream (bzzz/p2p/mesh.py) and the help stream (bzzz/help/service.py)
carry one message each this way.

What can go wrong is told apart, because callers count it differently: a length above the
caller's limit (:class:`FrameTooLarge`), more bytes than the length says (:class:`FrameMalformed`),
and a stream that ended, cleanly or not, before the frame was whole (:class:`FrameCut`).
py-libp2p's stream errors are translated here; a timeout is the caller's (its own scope).
"""

from __future__ import annotations

from libp2p.exceptions import BaseLibp2pError
from libp2p.io.abc import Reader

from ..errors import InputError

__all__ = ["FrameCut", "FrameError", "FrameMalformed", "FrameTooLarge", "HEADER", "frame",
           "read_frame"]

HEADER = 4  # bytes of the big-endian length before each frame
CHUNK = 65536  # bytes asked of the stream per read


class FrameError(InputError):
    """A peer's stream did not carry one whole frame; ``reason`` names what went wrong."""

    reason = "malformed"


class FrameTooLarge(FrameError):
    """The frame's length is above the reader's limit (nothing more is read)."""

    reason = "oversized"


class FrameMalformed(FrameError):
    """More bytes came than the frame's length says."""

    reason = "malformed"


class FrameCut(FrameError):
    """The stream ended (closed, reset or broken) before the frame was whole."""

    reason = "closed"


def frame(data: bytes) -> bytes:
    """``data`` behind its length: what :func:`read_frame` reads."""
    return len(data).to_bytes(HEADER, "big") + data


async def read_frame(stream: Reader, limit: int) -> bytes:
    """The frame's bytes, once it is whole (the stream is not read further).

    Raises :class:`FrameTooLarge` as soon as the length is known to be above ``limit``,
    :class:`FrameMalformed` when bytes beyond the frame came with it, :class:`FrameCut` when
    the stream ends first (its py-libp2p error is the ``__cause__``).
    """
    data = bytearray()
    while True:
        if len(data) >= HEADER:
            size = int.from_bytes(data[:HEADER], "big")
            if size > limit:
                raise FrameTooLarge(f"a frame of {size} bytes (at most {limit})")
            if len(data) > HEADER + size:
                raise FrameMalformed(f"{len(data) - HEADER - size} bytes after a frame of {size}")
            if len(data) == HEADER + size:
                return bytes(data[HEADER:])
        try:
            chunk = await stream.read(CHUNK)
        except BaseLibp2pError as exc:  # StreamEOF, StreamReset, StreamError: it ended
            raise FrameCut(f"the stream ended after {len(data)} bytes "
                           f"({type(exc).__name__})") from exc
        if not chunk:
            raise FrameCut(f"the stream ended after {len(data)} bytes")
        data += chunk
