"""The bucket layout: every key prefix retrain reads or writes, relative to ``RETRAIN_S3__PREFIX``.

======================================================  ===========================================
key                                                     what it holds
======================================================  ===========================================
``incoming/YYYY-MM-DD/{source}.jsonl[.gz]``             what producers land, one partition a day
``incoming/YYYY-MM-DD/{source}/[TAG=VALUE/...]{name}``  the same, in folders (``.jsonl[.gz]``)
``quarantine/{run_id}/{batch_id}.jsonl``                a batch's rejected lines, with reasons
``reports/{run_id}/{batch_id}/data-docs/``              a batch's Great Expectations Data Docs
``curated/shards/{batch_id}.jsonl``                     the examples one batch accepted
``curated/keys/{batch_id}.keys``                        their two dedup keys, 64 raw bytes each
``curated/versions/{version_id}.json``                  a dataset version: its shards and counts
``curated/LATEST.json``                                 the newest dataset version (a pointer)
``eval/{name}/items.jsonl``                             a held-out eval set
``evals/{run_id}/{label}.jsonl``                        one evaluation's results of one model
``evals/{run_id}/summary.json``                         one evaluation's summary
``models/lora/{version}-{config_hash}/data/``           the training files a lora run reads
``models/lora/{version}-{config_hash}/adapter/``        its adapter, tokenizer, config, metrics
``models/lora/{version}-{config_hash}/manifest.json``   their sha256 (create-only, written last)
``models/lora/{version}-{config_hash}/progress.json``   the run's progress while it trains
``registry/log/{seq:012d}.json``                        the registry's events (append-only)
``registry/snapshots/{seq:012d}.json``                  its whole state as of an event
``registry/heads/{seq:012d}.json``                      its aliases' current events only
``registry/LATEST.json``                                the newest heads and snapshot (a hint)
``state/ingest/processed/{partition}.json``             key -> ETag of the objects ingested
``state/ingest/processed.json``                         the old single index (migrated once)
``state/ingest/watermark.json``                         the newest partition ingested
``state/ingest/pending.json``                           the batch whose bookkeeping is under way
``state/ingest/batches/{batch_id}.json``                a batch manifest (create-only)
``state/budget/{YYYY-MM}.json``                         a month's training spend ledger
``state/uploads/{provider}/{sha256}.json``              the file id of an uploaded training file
``state/jobs/{dataset_version}-{config_hash}.json``     the fine-tuning job of a version and config
``state/decisions/{dataset_version}.json``              the promotion decision of a version
``state/decisions/LAST.json``                           the newest decision (a pointer)
``state/failures/{dataset_version}.json``               why a version can never be trained
``state/eval-cache/{model}/{params_hash}/{item}.json``  a cached eval answer
``state/moderation/{batch_id}.json``                    a batch's moderation verdicts, by example
``state/leases/{name}/{seq:012d}.json``                 the records of a lease (``nightly``)
======================================================  ===========================================

In ``incoming/``, ``YYYY-MM-DD`` is the UTC date the data was produced (the *partition*);
``{source}`` names the producer; ``TAG=VALUE`` folders tag everything below them.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = [
    "BATCH_PREFIX",
    "BUDGET_PREFIX",
    "CURATED_LATEST_KEY",
    "CURATED_PREFIX",
    "DATA_SUFFIXES",
    "DECISION_PREFIX",
    "EVALS_PREFIX",
    "EVAL_CACHE_PREFIX",
    "EVAL_SET_PREFIX",
    "FAILURE_PREFIX",
    "HEADS_PREFIX",
    "INCOMING_PREFIX",
    "JOB_PREFIX",
    "KEYS_PREFIX",
    "LAST_DECISION_KEY",
    "LEASE_PREFIX",
    "LORA_PREFIX",
    "LEGACY_PROCESSED_KEY",
    "MODERATION_PREFIX",
    "PENDING_KEY",
    "PROCESSED_PREFIX",
    "QUARANTINE_PREFIX",
    "REGISTRY_LATEST_KEY",
    "REGISTRY_LOG_PREFIX",
    "REGISTRY_PREFIX",
    "REPORTS_PREFIX",
    "SHARD_PREFIX",
    "SNAPSHOT_PREFIX",
    "STATE_PREFIX",
    "UNDATED",
    "UPLOAD_PREFIX",
    "VERSION_PREFIX",
    "WATERMARK_KEY",
    "batch_key",
    "data_docs_prefix",
    "decision_key",
    "eval_results_key",
    "eval_set_key",
    "eval_summary_key",
    "event_key",
    "failure_key",
    "heads_key",
    "incoming_key",
    "job_key",
    "keys_key",
    "lease_prefix",
    "lora_adapter_prefix",
    "lora_data_key",
    "lora_manifest_key",
    "lora_progress_key",
    "lora_run_prefix",
    "lease_record_key",
    "ledger_key",
    "moderation_key",
    "partition_of",
    "processed_key",
    "quarantine_key",
    "shard_batch_id",
    "shard_key",
    "snapshot_key",
    "source_of",
    "tags_of",
    "upload_key",
    "uploads_prefix",
    "version_key",
]

INCOMING_PREFIX = "incoming/"
QUARANTINE_PREFIX = "quarantine/"
REPORTS_PREFIX = "reports/"

CURATED_PREFIX = "curated/"
SHARD_PREFIX = f"{CURATED_PREFIX}shards/"
KEYS_PREFIX = f"{CURATED_PREFIX}keys/"
VERSION_PREFIX = f"{CURATED_PREFIX}versions/"
CURATED_LATEST_KEY = f"{CURATED_PREFIX}LATEST.json"

EVAL_SET_PREFIX = "eval/"
EVALS_PREFIX = "evals/"

LORA_PREFIX = "models/lora/"

REGISTRY_PREFIX = "registry/"
REGISTRY_LOG_PREFIX = f"{REGISTRY_PREFIX}log/"
SNAPSHOT_PREFIX = f"{REGISTRY_PREFIX}snapshots/"
HEADS_PREFIX = f"{REGISTRY_PREFIX}heads/"
REGISTRY_LATEST_KEY = f"{REGISTRY_PREFIX}LATEST.json"

STATE_PREFIX = "state/"
PROCESSED_PREFIX = f"{STATE_PREFIX}ingest/processed/"
WATERMARK_KEY = f"{STATE_PREFIX}ingest/watermark.json"
PENDING_KEY = f"{STATE_PREFIX}ingest/pending.json"
LEGACY_PROCESSED_KEY = f"{STATE_PREFIX}ingest/processed.json"
BATCH_PREFIX = f"{STATE_PREFIX}ingest/batches/"
BUDGET_PREFIX = f"{STATE_PREFIX}budget/"
UPLOAD_PREFIX = f"{STATE_PREFIX}uploads/"
JOB_PREFIX = f"{STATE_PREFIX}jobs/"
DECISION_PREFIX = f"{STATE_PREFIX}decisions/"
LAST_DECISION_KEY = f"{DECISION_PREFIX}LAST.json"
FAILURE_PREFIX = f"{STATE_PREFIX}failures/"
EVAL_CACHE_PREFIX = f"{STATE_PREFIX}eval-cache/"
MODERATION_PREFIX = f"{STATE_PREFIX}moderation/"
LEASE_PREFIX = f"{STATE_PREFIX}leases/"

UNDATED = "_undated"
DATA_SUFFIXES = (".jsonl", ".jsonl.gz")
_PARTITION = re.compile(rf"^{INCOMING_PREFIX}(\d{{4}}-\d{{2}}-\d{{2}})/")
_SHARD_SUFFIX = ".jsonl"


def incoming_key(partition: str, name: str) -> str:
    """A producer's object ``name`` (``{source}.jsonl`` or ``{source}/...``) in a date partition."""
    return f"{INCOMING_PREFIX}{partition}/{name}"


def partition_of(key: str) -> str:
    """The date partition of an incoming key (``YYYY-MM-DD``), or ``_undated``."""
    match = _PARTITION.match(key)
    if match is None:
        return UNDATED
    try:
        date.fromisoformat(match.group(1))
    except ValueError:
        return UNDATED
    return match.group(1)


def source_of(key: str) -> str:
    """The producer of an incoming key: the first path segment after the date partition."""
    rest = key.removeprefix(INCOMING_PREFIX)
    if partition_of(key) != UNDATED:
        rest = rest.split("/", 1)[1]
    first = rest.split("/", 1)[0]
    for suffix in DATA_SUFFIXES:
        first = first.removesuffix(suffix)
    return first or "_unknown"


def tags_of(key: str) -> dict[str, str]:
    """``TAG=VALUE`` folders of an incoming key."""
    folders = key.split("/")[:-1]
    return dict(folder.split("=", 1) for folder in folders if "=" in folder)


def quarantine_key(run_id: str, batch_id: str) -> str:
    return f"{QUARANTINE_PREFIX}{run_id}/{batch_id}.jsonl"


def data_docs_prefix(run_id: str, batch_id: str) -> str:
    return f"{REPORTS_PREFIX}{run_id}/{batch_id}/data-docs/"


def shard_key(batch_id: str) -> str:
    return f"{SHARD_PREFIX}{batch_id}{_SHARD_SUFFIX}"


def shard_batch_id(shard: str) -> str:
    """The batch whose examples the shard at key ``shard`` holds."""
    return shard.removeprefix(SHARD_PREFIX).removesuffix(_SHARD_SUFFIX)


def keys_key(shard: str) -> str:
    """The dedup keys file beside the shard at key ``shard``."""
    return f"{KEYS_PREFIX}{shard_batch_id(shard)}.keys"


def version_key(version_id: str) -> str:
    return f"{VERSION_PREFIX}{version_id}.json"


def eval_set_key(name: str) -> str:
    return f"{EVAL_SET_PREFIX}{name}/items.jsonl"


def eval_results_key(run_id: str, label: str) -> str:
    """One model's results (``label``: the name it has in the evaluation) of one evaluation."""
    return f"{EVALS_PREFIX}{run_id}/{label}.jsonl"


def eval_summary_key(run_id: str) -> str:
    return f"{EVALS_PREFIX}{run_id}/summary.json"


def decision_key(dataset_version: str, migration: str | None = None) -> str:
    """The decision on a dataset version; a migration's (``retrain migrate --to BACKEND``) is its own."""
    if migration:
        return f"{DECISION_PREFIX}{dataset_version}.migrate-{migration}.json"
    return f"{DECISION_PREFIX}{dataset_version}.json"


def moderation_key(batch_id: str) -> str:
    return f"{MODERATION_PREFIX}{batch_id}.json"


def failure_key(dataset_version: str) -> str:
    return f"{FAILURE_PREFIX}{dataset_version}.json"


def event_key(seq: int) -> str:
    return f"{REGISTRY_LOG_PREFIX}{seq:012d}.json"


def snapshot_key(seq: int) -> str:
    return f"{SNAPSHOT_PREFIX}{seq:012d}.json"


def heads_key(seq: int) -> str:
    return f"{HEADS_PREFIX}{seq:012d}.json"


def processed_key(partition: str) -> str:
    """The processed index of one partition (``_undated`` for keys outside a partition)."""
    return f"{PROCESSED_PREFIX}{partition}.json"


def batch_key(batch_id: str) -> str:
    return f"{BATCH_PREFIX}{batch_id}.json"


def ledger_key(month: str) -> str:
    """The spend ledger of a month (``YYYY-MM``)."""
    return f"{BUDGET_PREFIX}{month}.json"


def uploads_prefix(provider: str) -> str:
    """The upload records of one provider (by its name)."""
    return f"{UPLOAD_PREFIX}{provider}/"


def upload_key(provider: str, sha256: str) -> str:
    return f"{uploads_prefix(provider)}{sha256}.json"


def job_key(dataset_version: str, config_hash: str) -> str:
    return f"{JOB_PREFIX}{dataset_version}-{config_hash}.json"


def lease_prefix(name: str) -> str:
    return f"{LEASE_PREFIX}{name}/"


def lease_record_key(name: str, seq: int) -> str:
    return f"{lease_prefix(name)}{seq:012d}.json"


def lora_run_prefix(dataset_version: str, config_hash: str) -> str:
    """Everything one lora training run reads and writes: ``data/``, ``adapter/``, the manifest."""
    return f"{LORA_PREFIX}{dataset_version}-{config_hash}/"


def lora_data_key(dataset_version: str, config_hash: str, split: str) -> str:
    """The ``train`` or ``validation`` file a lora run reads."""
    return f"{lora_run_prefix(dataset_version, config_hash)}data/{split}.jsonl"


def lora_adapter_prefix(dataset_version: str, config_hash: str) -> str:
    return f"{lora_run_prefix(dataset_version, config_hash)}adapter/"


def lora_manifest_key(dataset_version: str, config_hash: str) -> str:
    return f"{lora_run_prefix(dataset_version, config_hash)}manifest.json"


def lora_progress_key(dataset_version: str, config_hash: str) -> str:
    return f"{lora_run_prefix(dataset_version, config_hash)}progress.json"
