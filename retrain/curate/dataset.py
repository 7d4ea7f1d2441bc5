"""The curated dataset: immutable shards and the version manifests that name them.

A shard (``curated/shards/{batch_id}.jsonl``) holds the examples one ingest batch accepted,
each with its content hash and its split. Beside it, ``curated/keys/{batch_id}.keys`` holds
only the example's two dedup keys (SHA-256 of the content and the near-duplicate key, 32 raw
bytes each): a night checks new lines against every curated example by reading those,
64 bytes an example instead of the whole example (100,000 synthetic examples: 6.4 MB, not
51.5 MB). A dataset version (``curated/versions/{version_id}.json``) lists shards and
counts; it names exactly what a model is trained on. ``curated/LATEST.json`` points at the
newest version.

The train/validation split is a pure function of an example's hash, so an example never
changes sides between versions.

A version also records its *training-set policy* (``policy`` in its manifest, from
``DatasetSettings`` when the version was published), which ``build_training_files`` applies:

- ``{"name": "all"}``: every curated example;
- ``{"name": "recent", "days": N}``: examples landed in the N days up to the version's date
  (the date partition of the source key, else the date its batch was ingested);
- ``{"name": "capped", "max_examples": N, "stratify_by": "source"|"tag", "tag": T}``: at most
  N examples, allocated to strata (the source, or the ``T=VALUE`` folder of the source key)
  in proportion to their size; inside a stratum the examples with the lowest
  ``sha256(version_id:hash)`` are kept, so the sample is fixed for a given version.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from retrain.config.stage_settings import DatasetSettings
from retrain.exceptions import AlreadyExists, DataError, ObjectNotFound, StorageError
from retrain.storage.layout import (
    CURATED_LATEST_KEY,
    UNDATED,
    VERSION_PREFIX,
    batch_key,
    keys_key,
    partition_of,
    shard_batch_id,
    shard_key,
    source_of,
    tags_of,
    version_key,
)
from retrain.storage.object_store import ObjectStore
from retrain.validate.canonical import near_duplicate_key

__all__ = [
    "MIN_FILE_EXAMPLES",
    "DatasetVersion",
    "Shard",
    "TrainingFiles",
    "build_training_files",
    "is_validation",
    "iter_shard_rows",
    "CuratedKeys",
    "curated_keys",
    "latest_version",
    "list_versions",
    "load_version",
    "publish_version",
    "training_set_policy",
    "write_shard",
]

logger = logging.getLogger(__name__)

_DIGEST = 32  # bytes of a SHA-256 digest; a keys file holds two per example
MIN_FILE_EXAMPLES = 10


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
    excluded_by_policy: int = 0
    policy: dict[str, Any] = field(default_factory=lambda: {"name": "all"})


def is_validation(example_hash: str, fraction: float) -> bool:
    """The deterministic split: the first 32 bits of the hash against the fraction."""
    return int(example_hash[:8], 16) / 0x1_0000_0000 < fraction


def _packed_keys(example_hash: str, near: str) -> bytes:
    """One example's entry in a keys file: its two hex SHA-256 keys as raw bytes."""
    return bytes.fromhex(example_hash) + bytes.fromhex(near)


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
        keys.append(_packed_keys(example_hash, near))
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


def latest_version(store: ObjectStore) -> DatasetVersion | None:
    pointer = store.get_json_or_none(CURATED_LATEST_KEY)
    return None if pointer is None else load_version(store, pointer["version_id"])


def load_version(store: ObjectStore, version_id: str) -> DatasetVersion:
    missing = (
        f"dataset version {version_id!r} not found under {store.uri(VERSION_PREFIX)}: `retrain data "
        "list` shows the versions that exist"
    )
    return DatasetVersion.from_json(store.get_json(version_key(version_id), missing=missing))


def list_versions(store: ObjectStore, *, newest: int | None = None) -> list[DatasetVersion]:
    """The dataset versions in the bucket (all, or the ``newest`` ones), oldest first.

    A version holds the shards of the one before it and one more, which orders two versions
    published within the same second.
    """
    data = store.iter_json(VERSION_PREFIX, newest=newest)
    versions = sorted(
        (DatasetVersion.from_json(item) for item in data), key=lambda v: (v.created_at, len(v.shards))
    )
    return versions[-newest:] if newest else versions


def training_set_policy(settings: DatasetSettings) -> dict[str, Any]:
    """The policy record a new dataset version stores, from the settings."""
    if settings.policy == "recent":
        return {"name": "recent", "days": settings.recent_days}
    if settings.policy == "capped":
        policy: dict[str, Any] = {
            "name": "capped",
            "max_examples": settings.max_examples,
            "stratify_by": settings.stratify_by,
        }
        if settings.stratify_by == "tag":
            policy["tag"] = settings.tag
        return policy
    return {"name": "all"}


def publish_version(
    store: ObjectStore,
    previous: DatasetVersion | None,
    shard: Shard,
    run_id: str,
    *,
    policy: dict[str, Any] | None = None,
) -> DatasetVersion:
    """A new version = the previous shards + this one (idempotent if it is already there).

    The version id depends only on the shards; the policy is the one in force when the
    version was first published.
    """
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
        policy=dict(policy or {"name": "all"}),
    )
    try:
        store.put_json(version_key(version.version_id), version.to_json(), create_only=True)
    except AlreadyExists:
        version = load_version(store, version.version_id)
    store.put_json(CURATED_LATEST_KEY, {"version_id": version.version_id})
    logger.info(
        "dataset version %s: %d examples in %d shard(s)", version.version_id, version.examples, len(shards)
    )
    return version


@dataclass(frozen=True)
class CuratedKeys:
    """What the curated set already holds: exact hashes and near-duplicate keys."""

    hashes: set[str]
    near: set[str]


def curated_keys(store: ObjectStore, version: DatasetVersion | None, *, skip_shard: str = "") -> CuratedKeys:
    """The keys of every example already curated (except in skip_shard: a batch being redone).

    Each shard's keys come from its keys file; a shard without one (curated before keys files
    existed) or with one that does not match its example count is read in full instead, and
    its keys file is written then, so the next night reads that instead.
    """
    keys = CuratedKeys(set(), set())
    if version is None:
        return keys
    for shard in version.shards:
        if shard.key == skip_shard:
            continue
        try:
            packed: bytes | None = store.get_bytes(keys_key(shard.key))
        except ObjectNotFound:
            packed = None
        if packed is not None and len(packed) == 2 * _DIGEST * shard.examples:
            for start in range(0, len(packed), 2 * _DIGEST):
                keys.hashes.add(packed[start : start + _DIGEST].hex())
                keys.near.add(packed[start + _DIGEST : start + 2 * _DIGEST].hex())
            continue
        if packed is not None:
            logger.warning("%s does not match %s; reading the shard instead", keys_key(shard.key), shard.key)
        rebuilt = []
        for row in iter_shard_rows(store, shard):
            near = row.get("near") or near_duplicate_key(row["example"])
            keys.hashes.add(row["hash"])
            keys.near.add(near)
            rebuilt.append(_packed_keys(row["hash"], near))
        try:
            store.put_bytes(keys_key(shard.key), b"".join(rebuilt))
        except StorageError as exc:  # only an optimisation: the next night reads the shard again
            logger.warning("could not write %s: %s", keys_key(shard.key), exc)
        else:
            logger.info("wrote %s (%d examples) from its shard", keys_key(shard.key), len(rebuilt))
    return keys


def build_training_files(
    store: ObjectStore,
    version: DatasetVersion,
    *,
    eval_prompts: Container[str],
    prompt_of: Callable[[dict[str, Any]], str],
    policy: dict[str, Any] | None = None,
) -> TrainingFiles:
    """The train and validation JSONL of a version under its training-set policy.

    Examples that leak eval items are always left out. ``prompt_of(example) -> str``
    normalises an example's user turns the same way the eval set's prompts were
    normalised. ``policy`` overrides the version's recorded policy (for what-if runs).
    """
    policy = dict(policy or version.policy)
    name = policy.get("name", "all")
    if name not in ("all", "recent", "capped"):
        raise DataError(
            f"dataset version {version.version_id} has an unknown training-set policy {name!r}: "
            "use all, recent or capped (RETRAIN_DATASET__POLICY)"
        )
    rows: list[_Row] = []
    excluded = 0
    for shard in version.shards:
        for row in iter_shard_rows(store, shard):
            if prompt_of(row["example"]) in eval_prompts:
                excluded += 1
                continue
            rows.append(_Row(row, shard.key))
    if excluded:
        logger.warning("left %d examples out of training: their prompts are eval items", excluded)
    if name == "recent":
        kept = _recent(store, version, rows, int(policy["days"]))
    elif name == "capped":
        kept = _capped(version, rows, policy)
    else:
        kept = rows
    train = [orjson.dumps(r.row["example"]) + b"\n" for r in kept if r.row["split"] != "validation"]
    validation = [orjson.dumps(r.row["example"]) + b"\n" for r in kept if r.row["split"] == "validation"]
    if 0 < len(validation) < MIN_FILE_EXAMPLES:
        logger.warning(
            "only %d validation example(s), fewer than the %d a provider accepts in a file: no "
            "validation file this time (they stay out of training)",
            len(validation),
            MIN_FILE_EXAMPLES,
        )
        validation = []
    if len(kept) < len(rows):
        logger.info("training-set policy %s kept %d of %d curated examples", policy, len(kept), len(rows))
    return TrainingFiles(
        b"".join(train),
        b"".join(validation),
        len(train),
        len(validation),
        excluded,
        excluded_by_policy=len(rows) - len(kept),
        policy=policy,
    )


@dataclass(frozen=True)
class _Row:
    row: dict[str, Any]
    shard_key: str


def _recent(store: ObjectStore, version: DatasetVersion, rows: list[_Row], days: int) -> list[_Row]:
    """Rows landed in the ``days`` days up to the version's creation date (both included)."""
    until = datetime.fromisoformat(version.created_at).date()
    cutoff = (until - timedelta(days=days - 1)).isoformat()
    ingested: dict[str, str] = {}

    def landed(row: _Row) -> str:
        partition = partition_of(str(row.row.get("source", "")))
        if partition != UNDATED:
            return partition
        if row.shard_key not in ingested:
            manifest = store.get_json_or_none(batch_key(shard_batch_id(row.shard_key))) or {}
            ingested[row.shard_key] = str(manifest.get("finished_at") or version.created_at)[:10]
        return ingested[row.shard_key]

    return [row for row in rows if landed(row) >= cutoff]


def _capped(version: DatasetVersion, rows: list[_Row], policy: dict[str, Any]) -> list[_Row]:
    """A stratified sample of at most max_examples rows, fixed by the version id."""
    limit = int(policy["max_examples"])
    if len(rows) <= limit:
        return rows
    by_tag = policy.get("stratify_by") == "tag"
    tag = str(policy.get("tag", "intent"))
    strata: dict[str, list[int]] = {}
    for index, r in enumerate(rows):
        source = str(r.row.get("source", ""))
        stratum = tags_of(source).get(tag, "_untagged") if by_tag else source_of(source)
        strata.setdefault(stratum, []).append(index)
    quotas = _allocate(limit, {name: len(members) for name, members in strata.items()})
    seed = version.version_id.encode()
    keep: set[int] = set()
    for name, members in strata.items():
        ranked = sorted(
            members, key=lambda i: hashlib.sha256(seed + b":" + str(rows[i].row["hash"]).encode()).digest()
        )
        keep.update(ranked[: quotas[name]])
    return [r for index, r in enumerate(rows) if index in keep]


def _allocate(total: int, sizes: dict[str, int]) -> dict[str, int]:
    """Split total across strata in proportion to their sizes (largest remainder, ties by name)."""
    whole = sum(sizes.values())
    exact = {name: total * size / whole for name, size in sizes.items()}
    quotas = {name: int(share) for name, share in exact.items()}
    leftover = total - sum(quotas.values())
    for name in sorted(exact, key=lambda n: (quotas[n] - exact[n], n))[:leftover]:
        quotas[name] += 1
    return {name: min(quota, sizes[name]) for name, quota in quotas.items()}
