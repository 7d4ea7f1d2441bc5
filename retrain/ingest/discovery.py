"""Finding the objects under ``incoming/`` that were not ingested yet, without listing them all.

Key layout for producers::

    incoming/YYYY-MM-DD/{source}.jsonl[.gz]
    incoming/YYYY-MM-DD/{source}/[TAG=VALUE/...]{name}.jsonl[.gz]

``YYYY-MM-DD`` is the UTC date the data was produced (the *partition*). ``{source}`` names the
producer (it is the stratum of the ``capped`` training-set policy); optional ``TAG=VALUE``
folders (``intent=billing``) tag everything below them. Keys outside a date partition are
still ingested, but they sort after every date, so each night lists them again: keep them few.

Each night lists only keys after ``incoming/{watermark - overlap_days}`` (``StartAfter``),
where the watermark (``state/ingest/watermark.json``) is the newest partition ingested so
far. A write that lands late under a partition older than the overlap is a *straggler*:
only a reconciliation (``reconcile=True``, ``retrain ingest --reconcile``), which lists all
of ``incoming/``, finds it.

The processed index is one small JSON map per partition,
``state/ingest/processed/{partition}.json`` (key -> ETag; ``_undated.json`` for keys
outside a partition), so a night reads only the partitions it listed. Recording a batch
writes several of these files; the batch id is first written to
``state/ingest/pending.json`` so that a crash half-way is finished from the batch manifest
by the next discovery, before it lists anything.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from retrain.storage.layout import (
    DATA_SUFFIXES,
    INCOMING_PREFIX,
    LEGACY_PROCESSED_KEY,
    PENDING_KEY,
    UNDATED,
    WATERMARK_KEY,
    batch_key,
    partition_of,
    processed_key,
)
from retrain.storage.object_store import ObjectInfo, ObjectStore

__all__ = [
    "Discovery",
    "discover",
    "find_new_objects",
    "processed_etags",
    "record_processed",
    "read_watermark",
]

logger = logging.getLogger(__name__)

_FETCH_WORKERS = 16


@dataclass(frozen=True)
class Discovery:
    """What one discovery found, and how much it had to look at."""

    new: list[ObjectInfo]
    listed: int
    start_after: str | None
    partitions_read: int
    reconciled: bool


def read_watermark(store: ObjectStore) -> str | None:
    data = store.get_json_or_none(WATERMARK_KEY)
    return None if data is None else str(data["partition"])


def processed_etags(store: ObjectStore, partitions: Iterable[str]) -> dict[str, str]:
    """The processed index (key -> ETag) of these partitions, read in parallel."""
    wanted = sorted(set(partitions))
    if not wanted:
        return {}

    def read(partition: str) -> dict[str, str]:
        return store.get_json_or_none(processed_key(partition)) or {}

    merged: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=min(_FETCH_WORKERS, len(wanted))) as pool:
        for part in pool.map(read, wanted):
            merged.update(part)
    return merged


def discover(store: ObjectStore, *, reconcile: bool = False, overlap_days: int = 2) -> Discovery:
    """New objects: listed from the watermark minus the overlap, or everything when reconciling."""
    _finish_pending(store)
    _migrate_legacy_index(store)
    watermark = None if reconcile else read_watermark(store)
    start_after = None
    if watermark is not None:
        start = date.fromisoformat(watermark) - timedelta(days=overlap_days)
        start_after = f"{INCOMING_PREFIX}{start.isoformat()}"
    listed = 0
    candidates: list[ObjectInfo] = []
    for info in store.list(INCOMING_PREFIX, start_after=start_after):
        listed += 1
        if info.key.endswith(DATA_SUFFIXES):
            candidates.append(info)
        elif not info.key.endswith("/"):
            logger.warning("ignoring %s: only .jsonl and .jsonl.gz files are ingested", info.key)
    partitions = {partition_of(info.key) for info in candidates}
    processed = processed_etags(store, partitions)
    new = [info for info in candidates if processed.get(info.key) != info.etag]
    logger.debug(
        "discovery: listed %d key(s) %s, %d new",
        listed,
        "(full reconciliation)" if watermark is None else f"after {start_after}",
        len(new),
    )
    return Discovery(new, listed, start_after, len(partitions), watermark is None)


def find_new_objects(
    store: ObjectStore, *, reconcile: bool = False, overlap_days: int = 2
) -> list[ObjectInfo]:
    """Objects under incoming/ whose key and ETag have not been processed yet."""
    return discover(store, reconcile=reconcile, overlap_days=overlap_days).new


def record_processed(store: ObjectStore, batch_id: str, objects: Sequence[tuple[str, str]]) -> None:
    """Mark a batch's (key, ETag) pairs processed and advance the watermark; safe to repeat.

    Call only after the batch manifest exists: a crash part-way is finished by the next
    discovery from that manifest.
    """
    store.put_json(PENDING_KEY, {"batch_id": batch_id})
    by_partition: dict[str, dict[str, str]] = defaultdict(dict)
    for key, etag in objects:
        by_partition[partition_of(key)][key] = etag
    for partition, entries in sorted(by_partition.items()):
        index_key = processed_key(partition)
        current: dict[str, str] = store.get_json_or_none(index_key) or {}
        if any(current.get(key) != etag for key, etag in entries.items()):
            store.put_json(index_key, {**current, **entries})
    _advance_watermark(store, [key for key, _ in objects])
    store.put_json(PENDING_KEY, {"batch_id": None})


def _advance_watermark(store: ObjectStore, keys: Sequence[str]) -> None:
    """Move the watermark to the newest partition of these keys, never past tomorrow (UTC)."""
    cap = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    dated = [partition for partition in map(partition_of, keys) if partition != UNDATED and partition <= cap]
    if not dated:
        return
    current = read_watermark(store)
    newest = max(dated)
    if current is None or newest > current:
        store.put_json(
            WATERMARK_KEY,
            {"partition": newest, "updated_at": datetime.now(UTC).isoformat(timespec="seconds")},
        )


def _finish_pending(store: ObjectStore) -> None:
    pending = store.get_json_or_none(PENDING_KEY)
    batch_id = pending.get("batch_id") if pending else None
    if not batch_id:
        return
    manifest: dict[str, Any] | None = store.get_json_or_none(batch_key(batch_id))
    if manifest is None:
        store.put_json(PENDING_KEY, {"batch_id": None})
        return
    logger.info("finishing the bookkeeping of batch %s (interrupted last time)", batch_id)
    record_processed(store, batch_id, [(item["key"], item["etag"]) for item in manifest["objects"]])


def _migrate_legacy_index(store: ObjectStore) -> None:
    """Split the old single processed index into per-partition files (once)."""
    legacy: dict[str, str] | None = store.get_json_or_none(LEGACY_PROCESSED_KEY)
    if not legacy:
        return
    logger.info("migrating %s (%d keys) to per-partition files", LEGACY_PROCESSED_KEY, len(legacy))
    record_processed(store, "legacy-index", sorted(legacy.items()))
    store.put_json(f"{LEGACY_PROCESSED_KEY}.migrated", legacy)
    store.delete(LEGACY_PROCESSED_KEY)
