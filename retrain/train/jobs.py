"""Fine-tuning jobs through any OpenAI-compatible API, paying once per dataset version.

Idempotency rests on a record and a query:

- ``state/jobs/{dataset_version}-{config_hash}.json``: the job for a dataset version and
  training configuration;
- ``jobs.list(metadata={dataset_version, config_hash})``: finds a job created just before a
  crash, before its record was written.

A job that is running or succeeded is resumed; a new one is created only when the last
one failed or was cancelled, and never after a failure that is permanent for the dataset
version (``retrain.train.failures``). A job record names the Prefect flow run that owns the job, so
cancelling that run cancels the job (``cancel_jobs_of_run``). The training files a job
reads are uploaded once per content (``retrain.train.uploads``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from retrain.config.services import ProviderSettings
from retrain.config.stage_settings import TrainingSettings
from retrain.exceptions import FineTuneFailed, FineTuneFailedPermanently
from retrain.providers.clients import STATUS_ERRORS, api_errors, job_refused_hint
from retrain.storage.layout import JOB_PREFIX
from retrain.storage.object_store import ObjectStore
from retrain.train.failures import (
    PermanentFailure,
    configuration_refusal,
    permanent_failure,
    save_failure,
)
from retrain.train.job_api import JobApi, TrainingClient, job_api
from retrain.train.job_spec import JobSpec

__all__ = [
    "ACTIVE_STATUSES",
    "TrainingJob",
    "best_checkpoint",
    "cancel_job",
    "cancel_jobs_of_run",
    "ensure_job",
    "job_records",
    "wait_for_job",
]

logger = logging.getLogger(__name__)

_RETRYABLE_AFTER_END = {"failed", "cancelled"}
ACTIVE_STATUSES = frozenset({"validating_files", "queued", "running", "pausing", "paused"})
_PAUSED = {"pausing", "paused"}


@dataclass(frozen=True)
class TrainingJob:
    job: FineTuningJob
    resumed: bool


def ensure_job(
    client: TrainingClient,
    store: ObjectStore,
    provider: ProviderSettings,
    spec: JobSpec,
    *,
    training_file: str,
    validation_file: str | None,
    owner: str | None = None,
) -> TrainingJob:
    """Resume the job for this dataset version and config, or create it if there is none alive.

    ``owner`` (a Prefect flow run id) is recorded with the job, for ``cancel_jobs_of_run``.
    Raises FineTuneFailedPermanently when the last job failed permanently (a night that stopped
    before recording it), and ConfigError when the provider refuses the job for a setting.
    """
    api = job_api(client, provider, store)
    with api_errors("looking up fine-tuning jobs", provider):
        previous = _known_job(api, store, spec)
    if previous is not None and (failure := permanent_failure(previous, provider)) is not None:
        raise _permanently_failed(save_failure(store, failure))
    blocked = previous is not None and previous.status == "succeeded" and not previous.fine_tuned_model
    if previous is not None and previous.status not in _RETRYABLE_AFTER_END and not blocked:
        logger.debug("resuming fine-tuning job %s (%s)", previous.id, previous.status)
        _record_job(store, spec, previous, provider, owner)
        return TrainingJob(previous, resumed=True)
    if previous is not None:
        logger.warning("previous job %s ended %s; starting a new one", previous.id, previous.status)
    refused_hint = job_refused_hint(provider, datetime.now(UTC).date())
    with api_errors("creating the fine-tuning job", provider, refused_hint=refused_hint):
        try:
            job = api.create(spec, training_file, validation_file, lambda: _alive_job(api, spec))
        except STATUS_ERRORS as exc:
            if (refusal := configuration_refusal(exc, provider, spec.base_model)) is not None:
                raise refusal from None
            raise
    logger.debug("created fine-tuning job %s on %s for %s", job.id, provider.name, spec.dataset_version)
    _record_job(store, spec, job, provider, owner)
    return TrainingJob(job, resumed=False)


def wait_for_job(
    client: TrainingClient,
    provider: ProviderSettings,
    job_id: str,
    training: TrainingSettings,
    *,
    store: ObjectStore | None = None,
    on_event: Callable[[FineTuningJobEvent], None] = lambda event: None,
    on_status: Callable[[FineTuningJob], None] = lambda job: None,
    sleep: Callable[[float], None] = time.sleep,
) -> FineTuningJob:
    """Poll with exponential backoff and jitter until the job ends or the wait limit is reached.

    Returns the job: succeeded, or still in progress when the wait limit ran out (the next
    run resumes it). Raises FineTuneFailed when it failed, was cancelled, or succeeded
    without a model, and FineTuneFailedPermanently when it failed for a reason another try on
    the same data would meet again (the caller records it with ``save_failure``).
    """
    api = job_api(client, provider, store)
    seen: set[str] = set()
    last_status = ""
    delay = training.poll_interval_seconds
    deadline = time.monotonic() + training.wait_limit_seconds
    while True:
        with api_errors(f"polling fine-tuning job {job_id}", provider):
            job = _retrieve(api, job_id)
            events = api.events(job_id)
        for event in sorted(events, key=lambda e: (e.created_at, e.id)):
            if event.id not in seen:
                seen.add(event.id)
                on_event(event)
        on_status(job)
        if job.status in _PAUSED and job.status != last_status:
            logger.info("job %s is %s; waiting until it resumes or the wait limit", job.id, job.status)
        last_status = job.status
        if job.status == "succeeded":
            if not job.fine_tuned_model:
                raise FineTuneFailed(
                    f"fine-tuning job {job.id} succeeded without a model; treat it as failed"
                )
            return job
        if (failure := permanent_failure(job, provider)) is not None:
            raise _permanently_failed(failure)
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


def _permanently_failed(failure: PermanentFailure) -> FineTuneFailedPermanently:
    """The one-line error a night fails with when its dataset version failed permanently."""
    return FineTuneFailedPermanently(
        f"fine-tuning {failure.summary}: dataset version {failure.dataset_version} is not trained "
        "again; fix or remove the examples the error names, and the next night with new data "
        "trains a new version"
    )


def _retrieve(api: JobApi, job_id: str) -> FineTuningJob:
    job = api.retrieve(job_id)
    if job is None:
        raise FineTuneFailed(f"provider {api.provider.name!r} does not know fine-tuning job {job_id}")
    return job


def _alive_job(api: JobApi, spec: JobSpec) -> FineTuningJob | None:
    """The newest job for the spec that has not ended failed or cancelled (created just before a crash)."""
    alive = [job for job in api.find_jobs(spec) if job.status not in _RETRYABLE_AFTER_END]
    return max(alive, key=lambda job: job.created_at) if alive else None


def _known_job(api: JobApi, store: ObjectStore, spec: JobSpec) -> FineTuningJob | None:
    """The newest job for the spec: the one our state records, or a newer one the provider lists."""
    found = api.find_jobs(spec)
    record = store.get_json_or_none(spec.state_key)
    if record is not None and record["job_id"] not in {job.id for job in found}:
        recorded = api.retrieve(record["job_id"])
        if recorded is None:
            logger.warning("recorded job %s is unknown to the provider", record["job_id"])
        else:
            found.append(recorded)
    return max(found, key=lambda job: job.created_at) if found else None


def _record_job(
    store: ObjectStore, spec: JobSpec, job: FineTuningJob, provider: ProviderSettings, owner: str | None
) -> None:
    store.put_json(
        spec.state_key,
        {
            "job_id": job.id,
            "status": job.status,
            "dataset_version": spec.dataset_version,
            "config_hash": spec.config_hash,
            "provider": provider.name,
            "run_id": spec.metadata.get("run_id"),
            "flow_run_id": owner,
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def job_records(store: ObjectStore, *, backend: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every job record in ``state/jobs/`` (of ``backend`` only, if given) as (key, record)."""
    records = ((info.key, store.get_json(info.key)) for info in store.list(JOB_PREFIX))
    return [(key, record) for key, record in records if backend is None or record.get("backend") == backend]


def _update_job_records(store: ObjectStore, job: FineTuningJob) -> None:
    for key, record in job_records(store):
        if record.get("job_id") == job.id and record.get("status") != job.status:
            store.put_json(key, {**record, "status": job.status})


def best_checkpoint(client: TrainingClient, provider: ProviderSettings, job: FineTuningJob) -> str | None:
    """The checkpoint model with the lowest full validation loss (else valid_loss, if that is all)."""
    with api_errors(f"listing checkpoints of job {job.id}", provider):
        checkpoints = job_api(client, provider).checkpoints(job.id)

    def loss(checkpoint: FineTuningJobCheckpoint) -> float | None:
        metrics = checkpoint.metrics
        return metrics.full_valid_loss if metrics.full_valid_loss is not None else metrics.valid_loss

    scored = [(value, c.step_number, c) for c in checkpoints if (value := loss(c)) is not None]
    if not scored:
        logger.warning("job %s has no checkpoint with a validation loss; using the final model", job.id)
        return None
    value, step, chosen = min(scored, key=lambda item: (item[0], -item[1]))
    logger.info(
        "best checkpoint of job %s: step %d, validation loss %.4f (%s)",
        job.id,
        step,
        value,
        chosen.fine_tuned_model_checkpoint,
    )
    return chosen.fine_tuned_model_checkpoint


def cancel_job(
    client: TrainingClient, store: ObjectStore, provider: ProviderSettings, job_id: str
) -> FineTuningJob:
    """Cancel a job on the provider and mark its state record; a job that already ended is left alone."""
    api = job_api(client, provider, store)
    with api_errors(f"cancelling fine-tuning job {job_id}", provider):
        job = _retrieve(api, job_id)
        if job.status in ACTIVE_STATUSES:
            job = api.cancel(job_id)
            logger.info("cancelled fine-tuning job %s", job_id)
    _update_job_records(store, job)
    return job


def cancel_jobs_of_run(
    client: TrainingClient, store: ObjectStore, provider: ProviderSettings, flow_run_id: str
) -> list[str]:
    """Cancel every still-active job whose record names this flow run as its owner."""
    cancelled = []
    for _, record in job_records(store):
        if record.get("flow_run_id") != flow_run_id or record.get("provider", provider.name) != provider.name:
            continue
        job = cancel_job(client, store, provider, str(record["job_id"]))
        if job.status == "cancelled":
            cancelled.append(job.id)
    return cancelled
