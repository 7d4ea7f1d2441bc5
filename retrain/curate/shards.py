"""Curated shards: the examples one ingest batch accepted, and the keys file beside each.

A shard (``curated/shards/{batch_id}.jsonl``) holds the examples one ingest batch accepted,
each with its content hash and its split. Beside it, ``curated/keys/{batch_id}.keys`` holds
only the example's two dedup keys (SHA-256 of the content and the near-duplicate key, 32 raw
bytes each): a night checks new lines against every curated example by reading those,
64 bytes an example instead of the whole example (100,000 synthetic examples: 6.4 MB, not
51.5 MB).

The train/validation split is a pure function of an example's hash, so an example never
changes sides between versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from retrain.storage.layout import keys_key, shard_key
from retrain.storage.object_store import ObjectStore
from retrain.validate.canonical import near_duplicate_key

__all__ = [
    "KEYS_ENTRY_BYTES",
    "Shard",
    "is_validation",
    "iter_shard_rows",
    "packed_keys",
    "unpacked_keys",
    "write_shard",
]

_DIGEST = 32  # bytes of a SHA-256 digest; a keys file holds two per example
KEYS_ENTRY_BYTES = 2 * _DIGEST
"""The bytes of one example in a keys file: its content hash, then its near-duplicate key."""


@dataclass(frozen=True)
class Shard:
    key: str
    examples: int
    train: int
    validation: int
    sha256: str


def is_validation(example_hash: str, fraction: float) -> bool:
    """The deterministic split: the first 32 bits of the hash against the fraction."""
    return int(example_hash[:8], 16) / 0x1_0000_0000 < fraction


def packed_keys(example_hash: str, near: str) -> bytes:
    """One example's entry in a keys file: its two hex SHA-256 keys as raw bytes."""
    return bytes.fromhex(example_hash) + bytes.fromhex(near)


def unpacked_keys(packed: bytes) -> Iterator[tuple[str, str]]:
    """The (hash, near-duplicate key) pairs of a keys file, in hex."""
    for start in range(0, len(packed), KEYS_ENTRY_BYTES):
        yield packed[start : start + _DIGEST].hex(), packed[start + _DIGEST : start + KEYS_ENTRY_BYTES].hex()


def write_shard(
    store: ObjectStore,
    batch_id: str,
    rows: Iterable[tuple[str, dict[str, Any], str, int]],
    validation_fraction: float,
) -> Shard:
    """Write one batch's accepted examples; rows are (hash, example, source, line_no).

    The key depends only on the batch, so a re-run after a crash rewrites the same shard.
    """
    lines = []
    keys = []
    train = validation = 0
    for example_hash, example, source, line_no in rows:
        split = "validation" if is_validation(example_hash, validation_fraction) else "train"
        if split == "train":
            train += 1
        else:
            validation += 1
        near = near_duplicate_key(example)
        keys.append(packed_keys(example_hash, near))
        row = {
            "hash": example_hash,
            "near": near,
            "split": split,
            "source": source,
            "line_no": line_no,
            "example": example,
        }
        lines.append(orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n")
    body = b"".join(lines)
    key = shard_key(batch_id)
    store.put_bytes(key, body)
    store.put_bytes(keys_key(key), b"".join(keys))
    return Shard(key, train + validation, train, validation, hashlib.sha256(body).hexdigest())


def iter_shard_rows(store: ObjectStore, shard: Shard) -> Iterator[dict[str, Any]]:
    for line in store.iter_lines(shard.key):
        if line.strip():
            yield orjson.loads(line)
