"""Together AI's fine-tuning API through the ``together`` SDK, in our (OpenAI's) job shape.

- Jobs: ``fine_tuning.create`` (LoRA or full, from ``JobSpec.together_options``), ``retrieve``,
  ``list``, ``cancel``. Together's states map onto ours: pending -> validating_files, queued,
  running/compressing/uploading -> running, completed -> succeeded, error/user_error -> failed,
  cancel_requested/cancelled -> cancelled. The trained model is ``model_output_name``; a failed
  job's message is its last ``job_error`` event.
- Finding a job again: Together's jobs have no metadata, so a job's suffix ends in the spec's tag
  (a hash of dataset version and config), and a job listed with that tag, the same base model and
  the same training file is ours. A job's dataset version comes from its record in
  ``state/jobs/`` (or the spec, for a job found by it).
- Events: Together's events become message events; its step metrics (``list_metrics``) become
  metrics events with step, train_loss and total_steps, as the progress and loss reports read them.
- Files: ``files.upload`` (the SDK checks the file, then uploads it; Together itself answers a
  known checksum with the existing file).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import together
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from together import Together

from retrain.config.services import ProviderSettings
from retrain.exceptions import ConfigError
from retrain.providers.clients import create_once
from retrain.storage.layout import JOB_PREFIX
from retrain.storage.object_store import ObjectStore
from retrain.train.job_spec import JobSpec

__all__ = ["TOGETHER_STATUSES", "TogetherJobApi"]

TOGETHER_STATUSES: dict[str, str] = {
    "pending": "validating_files",
    "queued": "queued",
    "running": "running",
    "compressing": "running",
    "uploading": "running",
    "cancel_requested": "cancelled",
    "cancelled": "cancelled",
    "error": "failed",
    "user_error": "failed",
    "completed": "succeeded",
}
_ENDED = {"cancelled", "failed", "succeeded"}
_TOGETHER_SETTINGS = (
    "RETRAIN_TOGETHER__BASE_MODEL, __TRAINING_TYPE, __LORA_R, __LORA_ALPHA, __N_EPOCHS, "
    "__LEARNING_RATE, __BATCH_SIZE, __N_CHECKPOINTS"
)


def _seconds(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


class TogetherJobApi:
    """Together's fine-tuning API, its jobs seen as ``FineTuningJob``s."""

    def __init__(
        self, client: Together, provider: ProviderSettings, store: ObjectStore | None = None
    ) -> None:
        self.client = client
        self.provider = provider
        self.store = store
        self._metadata: dict[str, dict[str, str]] = {}

    # --- jobs ----------------------------------------------------------------------------------

    def _job_metadata(self, job_id: str) -> dict[str, str]:
        if job_id not in self._metadata and self.store is not None:
            for info in self.store.list(JOB_PREFIX):
                record = self.store.get_json(info.key)
                if record.get("job_id") == job_id:
                    self._metadata[job_id] = {
                        key: str(record[key])
                        for key in ("dataset_version", "config_hash", "run_id")
                        if record.get(key)
                    }
                    break
        return self._metadata.get(job_id, {})

    def _job(self, job: Any) -> FineTuningJob:
        """A Together job (any of the SDK's job models) in our shape."""
        status = TOGETHER_STATUSES.get(str(job.status), "running")
        error = None
        if status == "failed":
            error = {"code": "job_error", "message": self._error_message(job.id), "param": None}
        created = _seconds(job.created_at) or 0
        return FineTuningJob.model_validate(
            {
                "id": job.id,
                "object": "fine_tuning.job",
                "created_at": created,
                "error": error,
                "fine_tuned_model": job.x_model_output_name if status == "succeeded" else None,
                "finished_at": (_seconds(job.updated_at) or created) if status in _ENDED else None,
                "hyperparameters": {
                    "n_epochs": job.n_epochs or "auto",
                    "batch_size": job.batch_size or "auto",
                    "learning_rate_multiplier": job.learning_rate or "auto",
                },
                "model": job.model or "",
                "organization_id": "together",
                "result_files": [],
                "seed": getattr(job, "random_seed", None) or 0,
                "status": status,
                "trained_tokens": job.token_count if status == "succeeded" else None,
                "training_file": job.training_file or "",
                "validation_file": job.validation_file or None,
                "metadata": self._job_metadata(job.id) or None,
            }
        )

    def _error_message(self, job_id: str) -> str:
        errors = [e for e in self.client.fine_tuning.list_events(job_id).data if e.type == "job_error"]
        return errors[-1].message if errors else "the job ended in error (no error event)"

    def find_jobs(self, spec: JobSpec) -> list[FineTuningJob]:
        ours = [
            job
            for job in self.client.fine_tuning.list().data
            if (job.suffix or "").endswith(f"-{spec.tag}") and job.model == spec.base_model
        ]
        for job in ours:
            self._metadata.setdefault(job.id, dict(spec.metadata))
        return [self._job(job) for job in ours]

    def retrieve(self, job_id: str) -> FineTuningJob | None:
        try:
            return self._job(self.client.fine_tuning.retrieve(job_id))
        except together.NotFoundError:
            return None

    def create(
        self,
        spec: JobSpec,
        training_file: str,
        validation_file: str | None,
        find: Callable[[], FineTuningJob | None],
    ) -> FineTuningJob:
        try:
            created: Any = create_once(  # Together's new job, or ours found again by find()
                self.client,
                lambda once: once.fine_tuning.create(
                    training_file=training_file,
                    validation_file=validation_file or "",
                    model=spec.base_model,
                    suffix=spec.together_suffix,
                    random_seed=spec.seed,
                    **spec.together_options,
                ),
                find,
                self.provider,
            )
        except ValueError as exc:  # the SDK checks the arguments against the model's limits first
            raise ConfigError(
                f"the together SDK refused the job for {spec.base_model!r}: {exc}; fix {_TOGETHER_SETTINGS}"
            ) from None
        self._metadata.setdefault(created.id, dict(spec.metadata))
        job = self.retrieve(created.id)
        assert job is not None, "a job Together just created is unknown to it"
        return job

    def events(self, job_id: str) -> list[FineTuningJobEvent]:
        listed = self.client.fine_tuning.list_events(job_id).data
        events = [
            FineTuningJobEvent(
                id=f"{job_id}-event-{index}",
                object="fine_tuning.job.event",
                created_at=int(datetime.fromisoformat(event.created_at).timestamp()),
                level="error" if event.level == "error" else "warn" if event.level == "warning" else "info",
                message=event.message,
                type="message",
            )
            for index, event in enumerate(listed)
        ]
        metrics = self.client.fine_tuning.list_metrics(job_id).metrics or []
        total = max((e.total_steps for e in listed if e.total_steps), default=None)
        for row in metrics:
            step = int(row.get("global_step", 0))
            data: dict[str, Any] = {"step": step}
            if total:
                data["total_steps"] = total
            if "train_loss" in row:
                data["train_loss"] = row["train_loss"]
            if "eval_loss" in row:
                data["valid_loss"] = row["eval_loss"]
            events.append(
                FineTuningJobEvent(
                    id=f"{job_id}-step-{step}",
                    object="fine_tuning.job.event",
                    created_at=events[-1].created_at if events else 0,
                    level="info",
                    message=f"Step {step}: training loss={row.get('train_loss', float('nan')):.4f}",
                    type="metrics",
                    data=data,
                )
            )
        return events

    def cancel(self, job_id: str) -> FineTuningJob:
        return self._job(self.client.fine_tuning.cancel(job_id))

    def checkpoints(self, job_id: str) -> list[FineTuningJobCheckpoint]:
        """Together's checkpoints carry no validation loss, so none is chosen over the final model."""
        return []

    def recent_jobs(self, limit: int) -> list[FineTuningJob]:
        return [self._job(job) for job in self.client.fine_tuning.list().data[:limit]]

    # --- files ---------------------------------------------------------------------------------

    def file_exists(self, file_id: str) -> bool:
        try:
            self.client.files.retrieve(file_id)
        except together.NotFoundError:
            return False
        return True

    def find_file(self, name: str, size: int) -> str | None:
        files = self.client.files.list().data
        return next((f.id for f in files if f.filename == name and f.bytes == size), None)

    def upload(self, name: str, content: bytes, *, part_threshold: int, part_size: int) -> str:
        """The SDK uploads from a path (and splits big files itself), so the bytes go through a file."""
        with tempfile.TemporaryDirectory(prefix="retrain-together-") as folder:
            path = Path(folder) / name
            path.write_bytes(content)
            uploaded = create_once(
                self.client,
                lambda once: once.files.upload(path, purpose="fine-tune", check=True),
                lambda: None,
                self.provider,
            )
        return uploaded.id

    def delete_file(self, file_id: str) -> bool:
        try:
            self.client.files.delete(file_id)
        except together.NotFoundError:
            return False
        return True
