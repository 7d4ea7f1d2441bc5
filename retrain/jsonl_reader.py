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

__all__ = ["ParsedLine", "RawLine", "is_blank", "iter_raw_lines", "parse_line", "read_jsonl"]

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_INFLATE_STEP = 1 << 20
_RAW_KEEP = 64 * 1024


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
    first = next((chunk for chunk in iterator if chunk), b"")
    if not first.startswith(_GZIP_MAGIC):
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


def iter_raw_lines(chunks: Iterable[bytes], *, max_line_bytes: int) -> Iterator[RawLine]:
    """Split a byte stream into physical lines; strips one BOM at the start and a trailing CR.

    A broken gzip stream ends the source with one ``RawLine`` carrying ``gzip_error``.
    """
    parts: list[bytes] = []
    size = 0
    line_no = 0
    at_start = True

    def finish() -> RawLine:
        nonlocal parts, size, line_no, at_start
        line_no += 1
        data = b"".join(parts)
        if at_start:
            data = data.removeprefix(_BOM)
            at_start = False
        overflow = size > max_line_bytes
        if not overflow:
            data = data.removesuffix(b"\r")
        line = RawLine(line_no, data, overflow, size)
        parts, size = [], 0
        return line

    def add(piece: bytes) -> None:
        nonlocal parts, size
        if size + len(piece) <= max_line_bytes:
            parts.append(piece)
        elif size <= max_line_bytes:
            parts = [b"".join([*parts, piece[:_RAW_KEEP]])[:_RAW_KEEP]]
        size += len(piece)

    try:
        for chunk in _inflate(chunks):
            pieces = chunk.split(b"\n")
            for piece in pieces[:-1]:
                add(piece)
                yield finish()
            add(pieces[-1])
    except zlib.error as exc:
        if parts:
            yield finish()
        yield RawLine(line_no + 1, b"", gzip_error=str(exc))
        return
    if size:
        yield finish()


def read_jsonl(
    chunks: Iterable[bytes], *, max_line_bytes: int = 8 << 20, include_blank: bool = False
) -> Iterator[ParsedLine]:
    """Parse every non-blank line of a JSONL byte stream; never raises on bad input.

    With ``include_blank`` blank lines are yielded too, marked ``blank`` (for counting them).
    """
    for raw in iter_raw_lines(chunks, max_line_bytes=max_line_bytes):
        if raw.gzip_error is not None:
            yield ParsedLine(
                raw.line_no, b"", None, "bad_gzip", f"the gzip stream is corrupt ({raw.gzip_error})"
            )
            continue
        if raw.overflow:
            yield ParsedLine(
                raw.line_no,
                raw.data,
                None,
                "line_too_long",
                f"{raw.size:,} bytes is over the {max_line_bytes:,}-byte line limit",
            )
            continue
        if is_blank(raw.data):
            if include_blank:
                yield ParsedLine(raw.line_no, raw.data, None, blank=True)
            continue
        yield parse_line(raw.line_no, raw.data)


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
