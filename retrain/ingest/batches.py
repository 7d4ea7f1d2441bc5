"""Exactly-once ingestion of new examples from ``incoming/``.

An object version (key + ETag) is processed once. One night's new objects form a batch
whose id is a hash of their keys and ETags, so a re-run after a crash redoes the same
batch and writes the same keys. The order of writes makes that safe:

1. quarantine file, shard and dataset version (deterministic keys, rewritten on a re-run);
2. the batch manifest ``state/ingest/batches/{batch_id}.json`` (create-only): per object,
   key, ETag, size, lines read, accepted and quarantined counts, run id;
3. the processed index: per-partition ``state/ingest/processed/{partition}.json`` (key ->
   ETag), then the watermark (see ``retrain.ingest.discovery``, which also finds the new objects).

Only after 2 is a batch done; only after 3 are its objects skipped by discovery. A changed
ETag is a new version of the object and is processed again.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import tempfile
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from retrain.config.settings import Settings
from retrain.curate.curated_keys import curated_keys
from retrain.curate.dataset import DatasetVersion, latest_version, publish_version
from retrain.curate.shards import write_shard
from retrain.curate.training_files import training_set_policy
from retrain.exceptions import AlreadyExists
from retrain.ingest.discovery import record_processed
from retrain.storage.layout import (
    BATCH_PREFIX,
    batch_key,
    data_docs_prefix,
    moderation_key,
    quarantine_key,
    shard_key,
)
from retrain.storage.object_store import ObjectInfo, ObjectStore
from retrain.validate.batch import validate_batch
from retrain.validate.batch_result import BatchResult, QuarantinedLine
from retrain.validate.moderation import Moderator
from retrain.validate.reason import Reason

__all__ = [
    "IngestReport",
    "ObjectManifest",
    "batch_id_for",
    "ingest_objects",
    "list_batches",
    "load_batch",
    "quarantined_rows",
]

logger = logging.getLogger(__name__)

_READ_AHEAD = 8
_WHOLE_OBJECT_BYTES = 8 << 20


@dataclass(frozen=True)
class ObjectManifest:
    key: str
    etag: str
    size: int
    lines_read: int
    accepted: int
    quarantined: int
    run_id: str


@dataclass
class IngestReport:
    """What one batch did; stored as the batch manifest and shown in the UI."""

    batch_id: str
    run_id: str
    objects: list[ObjectManifest]
    lines_read: int
    accepted: int
    quarantined: int
    by_reason: dict[str, int]
    gates: list[dict[str, Any]]
    passed: bool
    version_id: str | None
    quarantine_key: str | None
    token_stats: dict[str, float] = field(default_factory=dict)
    cost_estimate_usd: float | None = None
    finished_at: str = ""
    data_docs_key: str | None = None
    moderation: dict[str, Any] | None = None  # ModerationStats, when the pre-check ran

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IngestReport:
        objects = [ObjectManifest(**item) for item in data["objects"]]
        return cls(**{**data, "objects": objects})

    @property
    def failed_gates(self) -> list[str]:
        return [gate["message"] for gate in self.gates if not gate["passed"]]


def list_batches(store: ObjectStore, *, newest: int | None = None) -> list[IngestReport]:
    """The ingested batches' manifests (all, or the ``newest`` ones), oldest first."""
    data = store.iter_json(BATCH_PREFIX, newest=newest)
    reports = sorted(
        (IngestReport.from_json(item) for item in data), key=lambda r: (r.finished_at, r.batch_id)
    )
    return reports[-newest:] if newest else reports


def load_batch(store: ObjectStore, batch_id: str) -> IngestReport:
    missing = (
        f"batch {batch_id!r} not found under {store.uri(BATCH_PREFIX)}: `retrain batches list` shows "
        "the batches that exist"
    )
    return IngestReport.from_json(store.get_json(batch_key(batch_id), missing=missing))


def quarantined_rows(store: ObjectStore, report: IngestReport) -> Iterator[dict[str, Any]]:
    """The batch's quarantined lines as stored: source, line_no, reasons (code, message), raw."""
    if report.quarantine_key:
        for line in store.iter_lines(report.quarantine_key):
            if line.strip():
                yield orjson.loads(line)


def batch_id_for(objects: Sequence[ObjectInfo]) -> str:
    identity = "\n".join(sorted(f"{info.key}@{info.etag}" for info in objects))
    return "b-" + hashlib.sha256(identity.encode()).hexdigest()[:16]


def ingest_objects(
    store: ObjectStore,
    objects: Sequence[ObjectInfo],
    settings: Settings,
    *,
    run_id: str,
    eval_prompts: Container[str] = frozenset(),
    special_tokens: frozenset[str] | None = None,
    moderator: Moderator | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> IngestReport:
    """Validate a batch of new objects and curate what passes; idempotent per batch.

    ``special_tokens``: what the training tokenizer reads as special tokens
    (``retrain.train.lora.special_tokens.training_special_tokens``; None for the OpenAI families').
    ``moderator``: the moderation pre-check (``retrain.validate.moderation.moderator_for``); its
    verdicts are kept at ``state/moderation/{batch_id}.json``, so a re-run asks nothing again.

    ``progress(bytes_read, total_bytes)`` follows the reading of the objects (as stored, so a
    gzipped object counts its compressed bytes), after each chunk is validated.
    """
    batch_id = batch_id_for(objects)
    done = store.get_json_or_none(batch_key(batch_id))
    if done is not None:
        logger.info(
            "batch %s was already ingested by %s; finishing its bookkeeping", batch_id, done["run_id"]
        )
        report = IngestReport.from_json(done)
        _mark_processed(store, report)
        return report

    previous = latest_version(store)
    seen = curated_keys(store, previous, skip_shard=shard_key(batch_id))
    if moderator is not None:
        moderator.cache.update(store.get_json_or_none(moderation_key(batch_id)) or {})
    with tempfile.TemporaryDirectory(prefix="retrain-data-docs-") as docs_dir:
        result = validate_batch(
            _sources(store, objects, progress),
            settings.validation,
            base_model=settings.training.base_model,
            known_hashes=seen.hashes,
            known_near_keys=seen.near,
            eval_prompts=eval_prompts,
            special_tokens=special_tokens,
            training=settings.training,
            data_docs_dir=Path(docs_dir),
            new_examples_gate=False,  # the plan counts new examples since the last decision
            moderator=moderator,
        )
        data_docs_key = _upload_data_docs(store, result.data_docs_index, data_docs_prefix(run_id, batch_id))
    quarantined = list(result.quarantined)
    if not result.passed:
        quarantined += _reject_accepted(result)
    quarantine = _write_quarantine(store, quarantine_key(run_id, batch_id), quarantined)
    version = _curate(store, result, batch_id, previous, settings, run_id)

    report = _report(result, objects, quarantined, batch_id, run_id, version, quarantine)
    report.data_docs_key = data_docs_key
    if moderator is not None:
        if moderator.stats.sent:
            store.put_json(moderation_key(batch_id), moderator.cache)
        report.moderation = moderator.stats.to_json()
    try:
        store.put_json(batch_key(batch_id), report.to_json(), create_only=True)
    except AlreadyExists:
        logger.info("batch %s manifest was written by a concurrent run", batch_id)
    _mark_processed(store, report)
    return report


def _write_quarantine(store: ObjectStore, key: str, quarantined: list[QuarantinedLine]) -> str | None:
    """Store the quarantined lines at key; the key, or None when there are none (nothing is written)."""
    if not quarantined:
        return None
    store.put_jsonl(key, (_quarantine_row(line) for line in quarantined))
    return key


def _curate(
    store: ObjectStore,
    result: BatchResult,
    batch_id: str,
    previous: DatasetVersion | None,
    settings: Settings,
    run_id: str,
) -> DatasetVersion | None:
    """The dataset version with the batch's accepted examples as a new shard, if it passed with any."""
    if not (result.passed and result.accepted):
        return None
    shard = write_shard(
        store,
        batch_id,
        ((ex.hash, ex.example, ex.source, ex.line_no) for ex in result.accepted),
        settings.validation.validation_fraction,
    )
    return publish_version(store, previous, shard, run_id, policy=training_set_policy(settings.dataset))


def _sources(
    store: ObjectStore, objects: Sequence[ObjectInfo], progress: Callable[[int, int], None]
) -> Iterator[tuple[str, Iterator[bytes]]]:
    """(key, chunks) per object, in order; small objects are fetched a few ahead, in parallel.

    Objects above _WHOLE_OBJECT_BYTES are streamed when their turn comes, so memory stays
    bounded by the read-ahead window. ``progress`` gets the bytes read so far and in all.
    """
    total = sum(info.size for info in objects)
    read = 0

    def counted(chunks: Iterable[bytes]) -> Iterator[bytes]:
        nonlocal read
        for chunk in chunks:
            yield chunk  # the caller asks for the next chunk once it has validated this one
            read += len(chunk)
            progress(read, total)

    remaining = iter(objects)
    window: deque[tuple[ObjectInfo, Future[bytes] | None]] = deque()
    with ThreadPoolExecutor(max_workers=_READ_AHEAD) as pool:

        def fill() -> None:
            while len(window) < _READ_AHEAD:
                info = next(remaining, None)
                if info is None:
                    return
                small = info.size <= _WHOLE_OBJECT_BYTES
                window.append((info, pool.submit(store.get_bytes, info.key) if small else None))

        fill()
        while window:
            info, body = window.popleft()
            fill()
            chunks = (body.result(),) if body is not None else store.iter_chunks(info.key)
            yield info.key, counted(chunks)


def _upload_data_docs(store: ObjectStore, index: Path | None, prefix: str) -> str | None:
    """Store the batch's Great Expectations Data Docs with the run's outputs; the key of index.html."""
    if index is None:
        return None
    site = index.parent
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        store.put_bytes(
            prefix + path.relative_to(site).as_posix(), path.read_bytes(), content_type=content_type
        )
    key = prefix + index.relative_to(site).as_posix()
    logger.info("Data Docs of the batch stored at %s", store.uri(key))
    return key


def _reject_accepted(result: BatchResult) -> list[QuarantinedLine]:
    """When a batch-level gate fails, its valid rows are quarantined too, never dropped."""
    failed = "; ".join(gate.message for gate in result.gates if not gate.passed)
    reason = Reason("batch_rejected", f"the batch failed its gates: {failed}")
    return [
        QuarantinedLine(source=ex.source, line_no=ex.line_no, raw=_raw(ex.example), reasons=[reason])
        for ex in result.accepted
    ]


def _raw(example: dict[str, Any]) -> str:
    return orjson.dumps(example).decode()


def _quarantine_row(line: QuarantinedLine) -> dict[str, Any]:
    return {
        "source": line.source,
        "line_no": line.line_no,
        "reasons": [{"code": reason.code, "message": reason.message} for reason in line.reasons],
        "raw": line.raw,
    }


def _report(
    result: BatchResult,
    objects: Sequence[ObjectInfo],
    quarantined: list[QuarantinedLine],
    batch_id: str,
    run_id: str,
    version: DatasetVersion | None,
    quarantine_key: str | None,
) -> IngestReport:
    by_reason: dict[str, int] = {}
    per_source: dict[str, int] = {}
    for line in quarantined:
        per_source[line.source] = per_source.get(line.source, 0) + 1
        for reason in {reason.code for reason in line.reasons}:
            by_reason[reason] = by_reason.get(reason, 0) + 1
    manifests = []
    for info in objects:
        counts = result.per_source.get(info.key)
        lines_read = counts.lines_read if counts else 0
        rejected = per_source.get(info.key, 0)
        manifests.append(
            ObjectManifest(
                info.key, info.etag, info.size, lines_read, lines_read - rejected, rejected, run_id
            )
        )
    accepted = len(result.accepted) if result.passed else 0
    return IngestReport(
        batch_id=batch_id,
        run_id=run_id,
        objects=manifests,
        lines_read=result.lines_read,
        accepted=accepted,
        quarantined=len(quarantined),
        by_reason=by_reason,
        gates=[gate.to_json() for gate in result.gates],
        passed=result.passed,
        version_id=version.version_id if version else None,
        quarantine_key=quarantine_key,
        token_stats=dict(result.token_stats),
        cost_estimate_usd=result.cost_estimate_usd,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _mark_processed(store: ObjectStore, report: IngestReport) -> None:
    record_processed(store, report.batch_id, [(item.key, item.etag) for item in report.objects])
