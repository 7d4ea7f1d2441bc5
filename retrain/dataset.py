"""The curated dataset: immutable shards and the version manifests that name them.

A shard (``curated/shards/{batch_id}.jsonl``) holds the examples one ingest batch accepted,
each with its content hash and its split. A dataset version
(``curated/versions/{version_id}.json``) lists shards and counts; it names exactly what a
model is trained on. ``curated/LATEST.json`` points at the newest version.

The train/validation split is a pure function of an example's hash, so an example never
changes sides between versions.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from retrain.exceptions import AlreadyExists, DataError
from retrain.storage import ObjectStore

__all__ = [
    "LATEST_KEY",
    "DatasetVersion",
    "Shard",
    "TrainingFiles",
    "build_training_files",
    "is_validation",
    "iter_shard_rows",
    "known_hashes",
    "latest_version",
    "load_version",
    "publish_version",
    "shard_key",
    "write_shard",
]

logger = logging.getLogger(__name__)

SHARD_PREFIX = "curated/shards/"
VERSION_PREFIX = "curated/versions/"
LATEST_KEY = "curated/LATEST.json"


@dataclass(frozen=True)
class Shard:
    key: str
    examples: int
    train: int
    validation: int
    sha256: str


@dataclass(frozen=True)
class DatasetVersion:
    version_id: str
    shards: tuple[Shard, ...]
    examples: int
    train: int
    validation: int
    content_hash: str
    created_at: str
    run_id: str
    policy: dict[str, Any] = field(default_factory=lambda: {"name": "all"})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["shards"] = [asdict(shard) for shard in self.shards]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetVersion:
        shards = tuple(Shard(**shard) for shard in data["shards"])
        return cls(**{**data, "shards": shards})


@dataclass(frozen=True)
class TrainingFiles:
    """The bytes uploaded for one dataset version, and what was held back."""

    train: bytes
    validation: bytes
    train_examples: int
    validation_examples: int
    excluded_for_eval_leak: int


def is_validation(example_hash: str, fraction: float) -> bool:
    """The deterministic split: the first 32 bits of the hash against the fraction."""
    return int(example_hash[:8], 16) / 0x1_0000_0000 < fraction


def shard_key(batch_id: str) -> str:
    return f"{SHARD_PREFIX}{batch_id}.jsonl"


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
    train = validation = 0
    for example_hash, example, source, line_no in rows:
        split = "validation" if is_validation(example_hash, validation_fraction) else "train"
        if split == "train":
            train += 1
        else:
            validation += 1
        row = {"hash": example_hash, "split": split, "source": source, "line_no": line_no, "example": example}
        lines.append(orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n")
    body = b"".join(lines)
    key = shard_key(batch_id)
    store.put_bytes(key, body)
    return Shard(key, train + validation, train, validation, hashlib.sha256(body).hexdigest())


def iter_shard_rows(store: ObjectStore, shard: Shard) -> Iterator[dict[str, Any]]:
    for line in store.iter_lines(shard.key):
        if line.strip():
            yield orjson.loads(line)


def latest_version(store: ObjectStore) -> DatasetVersion | None:
    pointer = store.get_json_or_none(LATEST_KEY)
    return None if pointer is None else load_version(store, pointer["version_id"])


def load_version(store: ObjectStore, version_id: str) -> DatasetVersion:
    data = store.get_json_or_none(f"{VERSION_PREFIX}{version_id}.json")
    if data is None:
        raise DataError(
            f"dataset version {version_id!r} not found under {store.uri(VERSION_PREFIX)}: "
            "list the folder to see the versions that exist"
        )
    return DatasetVersion.from_json(data)


def publish_version(
    store: ObjectStore, previous: DatasetVersion | None, shard: Shard, run_id: str
) -> DatasetVersion:
    """A new version = the previous shards + this one (idempotent if it is already there)."""
    shards = tuple(previous.shards) if previous else ()
    if shard.key in {existing.key for existing in shards}:
        assert previous is not None
        return previous
    shards = (*shards, shard)
    content_hash = hashlib.sha256("\n".join(s.sha256 for s in shards).encode()).hexdigest()
    version = DatasetVersion(
        version_id=f"ds-{content_hash[:12]}",
        shards=shards,
        examples=sum(s.examples for s in shards),
        train=sum(s.train for s in shards),
        validation=sum(s.validation for s in shards),
        content_hash=content_hash,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        run_id=run_id,
    )
    try:
        store.put_json(f"{VERSION_PREFIX}{version.version_id}.json", version.to_json(), create_only=True)
    except AlreadyExists:
        version = load_version(store, version.version_id)
    store.put_json(LATEST_KEY, {"version_id": version.version_id})
    logger.info(
        "dataset version %s: %d examples in %d shards", version.version_id, version.examples, len(shards)
    )
    return version


def known_hashes(store: ObjectStore, version: DatasetVersion | None, *, skip_shard: str = "") -> set[str]:
    """Hashes of every example already curated (except in skip_shard: a batch being redone)."""
    if version is None:
        return set()
    return {
        row["hash"]
        for shard in version.shards
        if shard.key != skip_shard
        for row in iter_shard_rows(store, shard)
    }


def build_training_files(
    store: ObjectStore,
    version: DatasetVersion,
    *,
    eval_prompts: Container[str],
    prompt_of: Callable[[dict[str, Any]], str],
) -> TrainingFiles:
    """The train and validation JSONL of a version, leaving out examples that leak eval items.

    ``prompt_of(example) -> str`` normalises an example's user turns the same way the eval
    set's prompts were normalised.
    """
    train: list[bytes] = []
    validation: list[bytes] = []
    excluded = 0
    for shard in version.shards:
        for row in iter_shard_rows(store, shard):
            if prompt_of(row["example"]) in eval_prompts:
                excluded += 1
                continue
            target = validation if row["split"] == "validation" else train
            target.append(orjson.dumps(row["example"]) + b"\n")
    if excluded:
        logger.warning("left %d examples out of training: their prompts are eval items", excluded)
    return TrainingFiles(b"".join(train), b"".join(validation), len(train), len(validation), excluded)
