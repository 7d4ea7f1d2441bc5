from __future__ import annotations

import gzip
import random

from retrain.validate.jsonl_reader import read_jsonl


def _codes(data: bytes, chunk: int = 7, **kwargs: int) -> list[tuple[int, str | None]]:
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return [(line.line_no, line.code) for line in read_jsonl(chunks, **kwargs)]


HOSTILE = (
    b'\xef\xbb\xbf{"a": 1}\r\n'  # BOM + CRLF
    b"\n   \n"  # blank lines: not examples, not read lines
    b"[1, 2]\n"  # not an object
    b'"just a string"\n'
    b"not json\n"
    b'{"b": "\xff\xfe"}\n'  # invalid UTF-8
    b'{"c": 3}'  # no trailing newline
)


def test_hostile_lines_get_reasons_and_physical_line_numbers() -> None:
    assert _codes(HOSTILE) == [
        (1, None),
        (4, "not_object"),
        (5, "not_object"),
        (6, "not_json"),
        (7, "invalid_utf8"),
        (8, None),
    ]


def test_bom_and_crlf_are_stripped() -> None:
    lines = list(read_jsonl([HOSTILE]))
    assert lines[0].value == {"a": 1}
    assert lines[0].data == b'{"a": 1}'


def test_gzip_is_detected_by_magic_bytes_including_multiple_members() -> None:
    data = gzip.compress(HOSTILE[:60]) + gzip.compress(HOSTILE[60:])
    assert _codes(data, chunk=5) == _codes(HOSTILE)


def test_truncated_gzip_ends_with_bad_gzip() -> None:
    data = gzip.compress(HOSTILE)
    codes = _codes(data[: len(data) - 12])
    assert codes[-1][1] == "bad_gzip"


def test_corrupt_gzip_ends_the_source_with_bad_gzip() -> None:
    data = gzip.compress(HOSTILE)
    codes = _codes(data[:12] + b"garbage!" * 8 + data[12:])
    assert codes[-1][1] == "bad_gzip"
    assert [code for _, code in codes].count("bad_gzip") == 1


def test_line_over_the_limit_is_cut_and_quarantined_and_the_next_line_survives() -> None:
    big = b'{"x": "' + b"y" * 3_000_000 + b'"}'
    lines = list(
        read_jsonl(
            [big[i : i + 65536] for i in range(0, len(big), 65536)] + [b'\n{"ok": 1}\n'],
            max_line_bytes=1 << 20,
        )
    )
    assert [(line.line_no, line.code) for line in lines] == [(1, "line_too_long"), (2, None)]
    assert len(lines[0].data) <= 64 * 1024
    assert "3,000,009 bytes" in lines[0].detail


def test_a_multi_megabyte_line_under_the_limit_parses() -> None:
    big = b'{"x": "' + b"y" * 3_000_000 + b'"}\n'
    (line,) = read_jsonl([big[i : i + 4096] for i in range(0, len(big), 4096)])
    assert line.code is None and len(line.value["x"]) == 3_000_000  # type: ignore[index]


def test_empty_input() -> None:
    assert _codes(b"") == []
    assert _codes(b"\n\r\n \n") == []


def test_random_bytes_never_crash() -> None:
    rng = random.Random(1)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
        lines = list(read_jsonl([data[:50], data[50:]]))
        assert all((line.code is None) == (line.value is not None) for line in lines)
