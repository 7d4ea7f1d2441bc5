"""Dataset versions: the manifests that name the curated shards a model is trained on.

A dataset version (``curated/versions/{version_id}.json``) lists shards and counts; it names
exactly what a model is trained on. ``curated/LATEST.json`` points at the newest version. A
version also records its *training-set policy* (``policy`` in its manifest, from
``DatasetSettings`` when the version was published; see ``retrain.curate.training_files``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from retrain.curate.shards import Shard
from retrain.exceptions import AlreadyExists
from retrain.storage.layout import CURATED_LATEST_KEY, VERSION_PREFIX, version_key
from retrain.storage.object_store import ObjectStore

__all__ = [
    "DatasetVersion",
    "latest_version",
    "list_versions",
    "load_version",
    "publish_version",
]

logger = logging.getLogger(__name__)


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
