"""The dedup keys of everything already curated, which a night checks its new lines against."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from retrain.curate.dataset import DatasetVersion
from retrain.curate.shards import KEYS_ENTRY_BYTES, iter_shard_rows, packed_keys, unpacked_keys
from retrain.exceptions import ObjectNotFound, StorageError
from retrain.storage.layout import keys_key
from retrain.storage.object_store import ObjectStore
from retrain.validate.canonical import near_duplicate_key

__all__ = ["CuratedKeys", "curated_keys"]

logger = logging.getLogger(__name__)


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
        if packed is not None and len(packed) == KEYS_ENTRY_BYTES * shard.examples:
            for example_hash, near in unpacked_keys(packed):
                keys.hashes.add(example_hash)
                keys.near.add(near)
            continue
        if packed is not None:
            logger.warning("%s does not match %s; reading the shard instead", keys_key(shard.key), shard.key)
        rebuilt = []
        for row in iter_shard_rows(store, shard):
            near = row.get("near") or near_duplicate_key(row["example"])
            keys.hashes.add(row["hash"])
            keys.near.add(near)
            rebuilt.append(packed_keys(row["hash"], near))
        try:
            store.put_bytes(keys_key(shard.key), b"".join(rebuilt))
        except StorageError as exc:  # only an optimisation: the next night reads the shard again
            logger.warning("could not write %s: %s", keys_key(shard.key), exc)
        else:
            logger.info("wrote %s (%d examples) from its shard", keys_key(shard.key), len(rebuilt))
    return keys
