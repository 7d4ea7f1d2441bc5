"""The training files of a dataset version, under its training-set policy.

A version records its policy (``policy`` in its manifest, from ``DatasetSettings`` when the
version was published), which ``build_training_files`` applies:

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
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from retrain.config.stage_settings import DatasetSettings
from retrain.curate.dataset import DatasetVersion
from retrain.curate.shards import iter_shard_rows
from retrain.exceptions import DataError
from retrain.storage.layout import UNDATED, batch_key, partition_of, shard_batch_id, source_of, tags_of
from retrain.storage.object_store import ObjectStore

__all__ = ["MIN_FILE_EXAMPLES", "TrainingFiles", "build_training_files", "training_set_policy"]

logger = logging.getLogger(__name__)

MIN_FILE_EXAMPLES = 10


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
