"""Fine-tuning through any OpenAI-compatible API, paying once per dataset version.

Idempotency rests on two records and one query:

- ``state/uploads/{sha256}.json``: content hash -> file id, so the same bytes are uploaded
  once (uploads are also named ``retrain-{sha256[:16]}-...`` so a crash between upload and
  record is recovered by listing the provider's files);
- ``state/jobs/{dataset_version}-{config_hash}.json``: the job for a dataset version and
  training configuration;
- ``jobs.list(metadata={dataset_version, config_hash})``: finds a job created just before a
  crash, before its record was written.

A job that is running or succeeded is resumed; a new one is created only when the last
one failed or was cancelled.
"""

from __future__ import annotations

import hashlib
import logging
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from openai import NotFoundError, OpenAI
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from retrain.exceptions import FineTuneFailed
from retrain.providers import api_errors
from retrain.settings import ProviderSettings, TrainingSettings
from retrain.storage import ObjectStore

__all__ = [
    "JobSpec",
    "TrainingJob",
    "config_hash",
    "ensure_job",
    "job_spec",
    "upload_training_file",
    "wait_for_job",
]

logger = logging.getLogger(__name__)

UPLOAD_STATE = "state/uploads/"
JOB_STATE = "state/jobs/"
_RETRYABLE_AFTER_END = {"failed", "cancelled"}
_MAX_SUFFIX = 64


@dataclass(frozen=True)
class JobSpec:
    """Everything that decides which job a dataset version gets."""

    dataset_version: str
    config_hash: str
    base_model: str
    method: dict[str, Any]
    seed: int
    suffix: str
    metadata: dict[str, str]

    @property
    def state_key(self) -> str:
        return f"{JOB_STATE}{self.dataset_version}-{self.config_hash}.json"


@dataclass(frozen=True)
class TrainingJob:
    job: FineTuningJob
    resumed: bool


def config_hash(training: TrainingSettings) -> str:
    """A short hash of the settings that change what a job learns (not when or how long we wait)."""
    relevant = {
        "base_model": training.base_model,
        "method": training.method,
        "n_epochs": training.n_epochs,
        "batch_size": training.batch_size,
        "learning_rate_multiplier": training.learning_rate_multiplier,
        "seed": training.seed,
    }
    return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def job_spec(training: TrainingSettings, *, dataset_version: str, run_id: str, night: date) -> JobSpec:
    hyperparameters = {
        "n_epochs": training.n_epochs,
        "batch_size": training.batch_size,
        "learning_rate_multiplier": training.learning_rate_multiplier,
    }
    digest = config_hash(training)
    suffix = f"{training.suffix}-{night:%Y%m%d}"[:_MAX_SUFFIX]
    return JobSpec(
        dataset_version=dataset_version,
        config_hash=digest,
        base_model=training.base_model,
        method={"type": training.method, training.method: {"hyperparameters": hyperparameters}},
        seed=training.seed,
        suffix=suffix,
        metadata={
            "dataset_version": dataset_version,
            "config_hash": digest,
            "run_id": run_id[:512],
            "pipeline_commit": _pipeline_commit(),
        },
    )


def upload_training_file(
    client: OpenAI, store: ObjectStore, provider: ProviderSettings, content: bytes, *, role: str
) -> str:
    """Upload content once per provider (by hash); return the provider's file id."""
    digest = hashlib.sha256(content).hexdigest()
    name = f"retrain-{digest[:16]}-{role}.jsonl"
    record_key = f"{UPLOAD_STATE}{provider.name}/{digest}.json"
    record = store.get_json_or_none(record_key)
    with api_errors(f"uploading {role} file", provider):
        if record is not None and _file_exists(client, record["file_id"]):
            logger.info("reusing uploaded %s file %s (%d bytes)", role, record["file_id"], len(content))
            return str(record["file_id"])
        existing = next(
            (
                f
                for f in client.files.list(purpose="fine-tune")
                if f.filename == name and f.bytes == len(content)
            ),
            None,
        )
        if existing is not None:
            file_id = existing.id
            logger.info("found %s file %s uploaded before a crash", role, file_id)
        else:
            file_id = client.files.create(file=(name, content), purpose="fine-tune").id
            logger.info("uploaded %s file %s (%d bytes)", role, file_id, len(content))
    store.put_json(record_key, {"file_id": file_id, "bytes": len(content), "sha256": digest, "name": name})
    return file_id


def ensure_job(
    client: OpenAI,
    store: ObjectStore,
    provider: ProviderSettings,
    spec: JobSpec,
    *,
    training_file: str,
    validation_file: str | None,
) -> TrainingJob:
    """Resume the job for this dataset version and config, or create it if there is none alive."""
    with api_errors("looking up fine-tuning jobs", provider):
        previous = _known_job(client, store, spec)
    if previous is not None and previous.status not in _RETRYABLE_AFTER_END:
        logger.info("resuming fine-tuning job %s (%s)", previous.id, previous.status)
        _record_job(store, spec, previous)
        return TrainingJob(previous, resumed=True)
    if previous is not None:
        logger.warning("previous job %s ended %s; starting a new one", previous.id, previous.status)
    with api_errors("creating the fine-tuning job", provider):
        job = client.fine_tuning.jobs.create(
            model=spec.base_model,
            training_file=training_file,
            validation_file=validation_file,
            method=spec.method,  # type: ignore[arg-type]
            seed=spec.seed,
            suffix=spec.suffix,
            metadata=spec.metadata,
        )
    logger.info("created fine-tuning job %s on %s for %s", job.id, provider.name, spec.dataset_version)
    _record_job(store, spec, job)
    return TrainingJob(job, resumed=False)


def wait_for_job(
    client: OpenAI,
    provider: ProviderSettings,
    job_id: str,
    training: TrainingSettings,
    *,
    on_event: Callable[[FineTuningJobEvent], None] = lambda event: None,
    on_status: Callable[[FineTuningJob], None] = lambda job: None,
    sleep: Callable[[float], None] = time.sleep,
) -> FineTuningJob:
    """Poll with exponential backoff and jitter until the job ends or the wait limit is reached.

    Returns the job: succeeded, or still in progress when the wait limit ran out (the next
    run resumes it). Raises FineTuneFailed when it failed, was cancelled, or succeeded
    without a model (for example, blocked by a safety check after training).
    """
    seen: set[str] = set()
    delay = training.poll_interval_seconds
    deadline = time.monotonic() + training.wait_limit_seconds
    while True:
        with api_errors(f"polling fine-tuning job {job_id}", provider):
            job = client.fine_tuning.jobs.retrieve(job_id)
            events = list(client.fine_tuning.jobs.list_events(job_id, limit=100))
        for event in sorted(events, key=lambda e: (e.created_at, e.id)):
            if event.id not in seen:
                seen.add(event.id)
                on_event(event)
        on_status(job)
        if job.status == "succeeded":
            if not job.fine_tuned_model:
                raise FineTuneFailed(
                    f"fine-tuning job {job.id} succeeded without a model; treat it as failed"
                )
            return job
        if job.status in _RETRYABLE_AFTER_END:
            error = job.error
            detail = f"{error.code}: {error.message}" if error and error.message else "no error given"
            raise FineTuneFailed(
                f"fine-tuning job {job.id} {job.status} ({detail}); the next run starts a new job"
            )
        if time.monotonic() >= deadline:
            logger.warning(
                "job %s is still %s at the wait limit; the next run resumes it", job.id, job.status
            )
            return job
        sleep(delay + random.uniform(0, delay / 4))
        delay = min(delay * 1.5, training.max_poll_interval_seconds)


def _known_job(client: OpenAI, store: ObjectStore, spec: JobSpec) -> FineTuningJob | None:
    record = store.get_json_or_none(spec.state_key)
    if record is not None:
        try:
            return client.fine_tuning.jobs.retrieve(record["job_id"])
        except NotFoundError:
            logger.warning("recorded job %s is unknown to the provider", record["job_id"])
    matches = client.fine_tuning.jobs.list(
        metadata={"dataset_version": spec.dataset_version, "config_hash": spec.config_hash}, limit=20
    )
    found = [job for job in matches if (job.metadata or {}).get("config_hash") == spec.config_hash]
    return max(found, key=lambda job: job.created_at) if found else None


def _record_job(store: ObjectStore, spec: JobSpec, job: FineTuningJob) -> None:
    store.put_json(
        spec.state_key,
        {
            "job_id": job.id,
            "status": job.status,
            "dataset_version": spec.dataset_version,
            "config_hash": spec.config_hash,
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def _file_exists(client: OpenAI, file_id: str) -> bool:
    try:
        client.files.retrieve(file_id)
    except NotFoundError:
        return False
    return True


def _pipeline_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"
