"""Robust, streaming JSONL reading: raw byte chunks in, one record per non-blank line out.

Accepts UTF-8 with or without a byte-order mark, LF or CRLF line endings, a missing final
newline, and gzip (detected by its magic bytes, so ``.jsonl.gz`` objects need no hint;
concatenated gzip members are read too). Memory stays bounded: the input is consumed chunk by
chunk, gzip output is inflated at most ``_INFLATE_STEP`` bytes at a time, and a line longer than
``max_line_bytes`` is not held: only its first ``_RAW_KEEP`` bytes are kept for the quarantine.

Line accounting: line numbers are physical (1-based, blank lines included) so messages point at
the right place, but blank lines (only whitespace) are not examples and are not *read lines*:
for every source, ``lines_read`` = non-blank lines = accepted + quarantined. Blank lines are
counted separately.

Reading never raises on bad data: each bad line becomes a ``ParsedLine`` with a reason
(``invalid_utf8``, ``not_json``, ``not_object``, ``line_too_long``, ``bad_gzip``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

import orjson

__all__ = [
    "GZIP_MAGIC",
    "LineBlock",
    "ParsedLine",
    "RawLine",
    "block_lines",
    "is_blank",
    "iter_line_blocks",
    "iter_raw_lines",
    "parse_line",
    "read_jsonl",
    "rejection",
]

GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_INFLATE_STEP = 1 << 20
_RAW_KEEP = 64 * 1024
_BLOCK_BYTES = 256 * 1024


@dataclass(frozen=True)
class RawLine:
    """One physical line (without its line ending); ``overflow`` when it was cut at the size limit."""

    line_no: int
    data: bytes
    overflow: bool = False
    size: int = 0
    gzip_error: str | None = None


@dataclass(frozen=True)
class ParsedLine:
    """A non-blank line: ``value`` is the JSON object, or ``code``/``detail`` say why not."""

    line_no: int
    data: bytes
    value: dict[str, Any] | None
    code: str | None = None
    detail: str = ""
    blank: bool = False

    @property
    def text(self) -> str:
        """The line decoded for humans (bad bytes replaced)."""
        return self.data.decode("utf-8", errors="replace")


def _inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pass plain chunks through; inflate a gzip stream (any number of members) in bounded steps.

    Raises zlib.error on corrupt or truncated gzip data.
    """
    iterator = iter(chunks)
    first = b""
    for chunk in iterator:  # enough bytes to tell gzip, however small the chunks
        first += chunk
        if len(first) >= len(GZIP_MAGIC):
            break
    if not first.startswith(GZIP_MAGIC):
        if first:
            yield first
        yield from iterator
        return
    decompressor = zlib.decompressobj(wbits=31)
    in_member = False
    for chunk in chain((first,), iterator):
        data = chunk
        while data:
            in_member = True
            out = decompressor.decompress(data, _INFLATE_STEP)
            if out:
                yield out
            if decompressor.eof:
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
                in_member = False
            else:
                data = decompressor.unconsumed_tail
    if in_member:
        raise zlib.error("the stream ends inside a gzip member (truncated file)")


@dataclass(frozen=True)
class LineBlock:
    """Consecutive physical lines of one source: their bytes joined by LF, without a final LF.

    Line ``first_line_no`` starts the data (its BOM removed when it is line 1). A line may end
    in CR (``block_lines`` strips it) and may be over the line limit (``block_lines`` cuts it).
    """

    first_line_no: int
    data: bytes
    n_lines: int


class _BlockCutter:
    """The state of ``iter_line_blocks`` between chunks: the stream from the start of the next
    block on (``pending``), the next line number, and the kept start of a line over the limit
    while its rest is skipped (``long_head``)."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self.pending: list[bytes] = []
        self.size = 0
        self.line_no = 1  # the first line not yet handed out
        self.long_head: bytes | None = None
        self.long_size = 0

    def feed(self, chunk: bytes) -> Iterator[LineBlock | RawLine]:
        """Take the next chunk of the stream; yields the blocks and long lines it completes."""
        if self.long_head is not None:
            end = chunk.find(b"\n")
            if end < 0:
                self.long_size += len(chunk)
                return
            self.long_size += end
            yield self._long_line()
            chunk = chunk[end + 1 :]
        if chunk:
            self.pending.append(chunk)
            self.size += len(chunk)
            if (self.size > _BLOCK_BYTES and b"\n" in chunk) or self.size > self.max_line_bytes:
                yield from self._cut_pending(final=False)

    def finish(self) -> Iterator[LineBlock | RawLine]:
        """The end of the stream: yields what is left."""
        if self.long_head is not None:
            yield self._long_line()
        else:
            yield from self._cut_pending(final=True)

    def _block(self, data: bytes) -> LineBlock:
        if self.line_no == 1:
            data = data.removeprefix(_BOM)
        n_lines = data.count(b"\n") + 1
        first, self.line_no = self.line_no, self.line_no + n_lines
        return LineBlock(first, data, n_lines)

    def _long_line(self) -> RawLine:
        head = self.long_head
        assert head is not None
        line = RawLine(
            self.line_no, head.removeprefix(_BOM) if self.line_no == 1 else head, True, self.long_size
        )
        self.line_no += 1
        self.long_head = None
        return line

    def _cut_pending(self, *, final: bool) -> Iterator[LineBlock | RawLine]:
        data = b"".join(self.pending)
        start = 0
        while len(data) - start > _BLOCK_BYTES and (end := data.find(b"\n", start + _BLOCK_BYTES)) >= 0:
            yield self._block(data[start:end])
            start = end + 1
        data = data[start:]
        self.pending, self.size = ([data], len(data)) if data else ([], 0)
        if final and data:
            yield self._block(data.removesuffix(b"\n"))
        elif len(data) > self.max_line_bytes:
            end = data.rfind(b"\n")
            if len(data) - end - 1 > self.max_line_bytes:  # the unfinished line is over the limit already
                if end >= 0:
                    yield self._block(data[:end])
                self.long_head, self.long_size = data[end + 1 : end + 1 + _RAW_KEEP], len(data) - end - 1
                self.pending, self.size = [], 0


def iter_line_blocks(chunks: Iterable[bytes], *, max_line_bytes: int) -> Iterator[LineBlock | RawLine]:
    """Group a byte stream into blocks of whole lines, in order.

    A block ends at the first line end at least ``_BLOCK_BYTES`` after its start, whatever the
    chunk sizes (or at the end of the stream, or before a line found over ``max_line_bytes``
    before it ended). A ``RawLine`` comes instead of a block for a line over
    ``max_line_bytes`` that did not fit in one (only its first ``_RAW_KEEP`` bytes are kept,
    ``overflow`` set) and, last, for a corrupt gzip stream (``gzip_error`` set). Splitting a
    block into lines is left to whoever handles it (``block_lines``), maybe another process.
    """
    cutter = _BlockCutter(max_line_bytes)
    try:
        for chunk in _inflate(chunks):
            yield from cutter.feed(chunk)
    except zlib.error as exc:
        yield from cutter.finish()
        yield RawLine(cutter.line_no, b"", gzip_error=str(exc))
        return
    yield from cutter.finish()


def block_lines(block: LineBlock, *, max_line_bytes: int) -> Iterator[tuple[int, int, bytes, int]]:
    """``(line_no, start, data, size)`` of every line of ``block``: ``data`` is the line without
    its line ending (CR included), found at ``block.data[start:]``, and ``size`` its length
    with the CR; a line of over ``max_line_bytes`` (``size``) is cut to its first ``_RAW_KEEP`` bytes.
    """
    line_no = block.first_line_no
    start = 0
    for piece in block.data.split(b"\n"):
        size = len(piece)
        if size > max_line_bytes:
            yield line_no, start, piece[:_RAW_KEEP], size
        elif piece.endswith(b"\r"):
            yield line_no, start, piece[:-1], size
        else:
            yield line_no, start, piece, size
        line_no += 1
        start += size + 1


def iter_raw_lines(chunks: Iterable[bytes], *, max_line_bytes: int) -> Iterator[RawLine]:
    """Split a byte stream into physical lines; strips one BOM at the start and a trailing CR.

    A broken gzip stream ends the source with one ``RawLine`` carrying ``gzip_error``.
    """
    for item in iter_line_blocks(chunks, max_line_bytes=max_line_bytes):
        if isinstance(item, RawLine):
            yield item
            continue
        for line_no, _, data, size in block_lines(item, max_line_bytes=max_line_bytes):
            yield RawLine(line_no, data, size > max_line_bytes, size)


def read_jsonl(
    chunks: Iterable[bytes], *, max_line_bytes: int = 8 << 20, include_blank: bool = False
) -> Iterator[ParsedLine]:
    """Parse every non-blank line of a JSONL byte stream; never raises on bad input.

    With ``include_blank`` blank lines are yielded too, marked ``blank`` (for counting them).
    """
    for raw in iter_raw_lines(chunks, max_line_bytes=max_line_bytes):
        rejected = rejection(raw, max_line_bytes)
        if rejected is not None:
            yield ParsedLine(raw.line_no, raw.data, None, *rejected)
            continue
        if is_blank(raw.data):
            if include_blank:
                yield ParsedLine(raw.line_no, raw.data, None, blank=True)
            continue
        yield parse_line(raw.line_no, raw.data)


def rejection(line: RawLine, max_line_bytes: int) -> tuple[str, str] | None:
    """``(code, detail)`` when the line is rejected whole: a corrupt gzip stream, or over the limit."""
    if line.gzip_error is not None:
        return "bad_gzip", f"the gzip stream is corrupt ({line.gzip_error})"
    if line.overflow:
        return "line_too_long", f"{line.size:,} bytes is over the {max_line_bytes:,}-byte line limit"
    return None


def is_blank(data: bytes) -> bool:
    """Whether a line holds only whitespace (space, tab, CR, LF, FF, VT) or nothing."""
    return not data or data.isspace()


def parse_line(line_no: int, data: bytes) -> ParsedLine:
    """Parse one physical line (neither blank nor over the size limit); never raises."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            detail = f"invalid UTF-8 at byte {decode_error.start}"
            return ParsedLine(line_no, data, None, "invalid_utf8", detail)
        return ParsedLine(line_no, data, None, "not_json", f"not valid JSON ({exc.msg} at char {exc.pos})")
    if not isinstance(value, dict):
        kind = "array" if isinstance(value, list) else type(value).__name__
        return ParsedLine(line_no, data, None, "not_object", f"a JSON {kind}, not an object")
    return ParsedLine(line_no, data, value)
