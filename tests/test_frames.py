"""One length-prefixed frame from a peer's stream (bzzz/p2p/frames.py): the goodbye and help
streams' reader tells a frame too large from a malformed one and from a stream cut short."""

import pytest
from libp2p.network.stream.exceptions import StreamEOF, StreamReset

from bzzz.errors import InputError
from bzzz.p2p.frames import (FrameCut, FrameMalformed, FrameTooLarge, frame, read_frame)


class Stream:
    """Hands out the given chunks, then ends the way it is told (b"" or an exception)."""

    def __init__(self, *chunks: bytes, end: BaseException | None = None) -> None:
        self.chunks = list(chunks)
        self.end = end
        self.reads = 0

    async def read(self, n: int | None = None) -> bytes:
        self.reads += 1
        if self.chunks:
            return self.chunks.pop(0)
        if self.end is not None:
            raise self.end
        return b""


async def test_a_whole_frame_in_pieces_and_nothing_read_after_it():
    data = frame(b"hello, world")
    stream = Stream(data[:2], data[2:7], data[7:], b"never read")
    assert await read_frame(stream, 100) == b"hello, world"
    assert stream.chunks == [b"never read"]
    assert await read_frame(Stream(frame(b"")), 0) == b""


async def test_too_large_is_told_from_the_length_alone():
    stream = Stream((101).to_bytes(4, "big"), b"x" * 101)
    with pytest.raises(FrameTooLarge) as err:
        await read_frame(stream, 100)
    assert err.value.reason == "oversized" and stream.reads == 1
    assert isinstance(err.value, InputError)


async def test_bytes_beyond_the_frame_are_malformed():
    with pytest.raises(FrameMalformed) as err:
        await read_frame(Stream(frame(b"abc") + b"d"), 100)
    assert err.value.reason == "malformed"


@pytest.mark.parametrize("chunks", [(), (b"\x00\x00",), (frame(b"abcdef")[:-1],)])
@pytest.mark.parametrize("end", [None, StreamEOF(), StreamReset()])
async def test_a_stream_ending_early_is_cut(chunks, end):
    with pytest.raises(FrameCut) as err:
        await read_frame(Stream(*chunks, end=end), 100)
    assert err.value.reason == "closed"
    assert err.value.__cause__ is end


async def test_other_errors_are_not_ours():
    with pytest.raises(ZeroDivisionError):
        await read_frame(Stream(end=ZeroDivisionError()), 100)
