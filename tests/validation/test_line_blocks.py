"""Line blocks: whatever the chunking, their lines are exactly the stream's lines."""

from __future__ import annotations

import gzip
import random

import pytest

from retrain.validate import jsonl_reader
from retrain.validate.jsonl_reader import LineBlock, RawLine, iter_line_blocks, iter_raw_lines

_BOM = b"\xef\xbb\xbf"
_LIMIT = 60
_KEEP = 16


def reference_lines(stream: bytes) -> list[tuple[int, bytes, bool, int]]:
    """The definition: (line_no, data, overflow, size) of every physical line of the stream."""
    pieces = stream.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    lines = []
    if pieces:
        pieces[0] = pieces[0].removeprefix(_BOM)
    for index, piece in enumerate(pieces):
        size = len(piece)
        if size > _LIMIT:
            lines.append((index + 1, piece[:_KEEP], True, size))
        else:
            lines.append((index + 1, piece.removesuffix(b"\r"), False, size))
    return lines


def random_stream(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randrange(0, 60)):
        kind = rng.random()
        if kind < 0.15:
            lines.append(rng.choice([b"", b"   ", b"\t", b"\r"]))
        elif kind < 0.3:
            lines.append(b"x" * rng.randrange(_LIMIT - 2, 4 * _LIMIT))  # around and far over the limit
        else:
            text = bytes(rng.choice(b'{}":ab c\xc3\xa9\r') for _ in range(rng.randrange(1, 40)))
            lines.append(text)
    stream = b"\n".join(lines)
    if lines and not lines[0].startswith(b"x") and rng.random() < 0.3:
        stream = _BOM + stream
    if rng.random() < 0.5:
        stream += rng.choice([b"\n", b"\r\n"])
    return stream


def chunkings(rng: random.Random, data: bytes) -> list[list[bytes]]:
    ones = [data[i : i + 1] for i in range(len(data))]
    sizes = []
    at = 0
    while at < len(data):
        step = rng.randrange(0, 200)
        sizes.append(data[at : at + step])
        at += step
    return [[data], ones, sizes, [b"", data, b""]]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonl_reader, "_BLOCK_BYTES", 100)
    monkeypatch.setattr(jsonl_reader, "_RAW_KEEP", _KEEP)


def _as_tuples(lines: list[RawLine]) -> list[tuple[int, bytes, bool, int]]:
    return [(line.line_no, line.data, line.overflow, line.size) for line in lines]


def test_lines_are_the_streams_lines_and_blocks_do_not_depend_on_chunking() -> None:
    rng = random.Random(20261126)
    multi_block = 0
    for _ in range(300):
        stream = random_stream(rng)
        expected = reference_lines(stream)
        for chunks in chunkings(rng, stream) + chunkings(rng, gzip.compress(stream)):
            assert _as_tuples(list(iter_raw_lines(chunks, max_line_bytes=_LIMIT))) == expected
            items = list(iter_line_blocks(chunks, max_line_bytes=_LIMIT))
            next_line = 1
            for item in items:
                if isinstance(item, LineBlock):
                    assert (item.first_line_no, item.n_lines) == (next_line, item.data.count(b"\n") + 1)
                    next_line += item.n_lines
                else:
                    assert item.overflow and item.line_no == next_line
                    next_line += 1
            multi_block += sum(isinstance(item, LineBlock) for item in items) > 2
    assert multi_block > 500  # most streams were split into several blocks


def test_a_corrupt_gzip_stream_ends_with_its_error_after_every_line_read() -> None:
    stream = b"".join(b'{"n": %d}\n' % i for i in range(40))
    packed = gzip.compress(stream)[:-30]  # cut inside the member
    for chunks in ([packed], [packed[i : i + 7] for i in range(0, len(packed), 7)]):
        lines = list(iter_raw_lines(chunks, max_line_bytes=_LIMIT))
        assert lines[-1].gzip_error is not None and lines[-1].line_no == len(lines)
        *whole, cut, _ = (line.data for line in lines)
        originals = stream.split(b"\n")
        assert whole == originals[: len(whole)]  # then the line the corruption cut short
        assert originals[len(whole)].startswith(cut) and len(whole) < 40
