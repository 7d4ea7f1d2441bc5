"""The candidate: the registry record of the model a finished fine-tuning job made."""

from __future__ import annotations

from openai.types.fine_tuning import FineTuningJob

from retrain.registry.records import ModelRecord

__all__ = ["candidate_from_job"]


def candidate_from_job(job: FineTuningJob, provider: str, dataset_version: str) -> ModelRecord:
    """The model ``job`` made on the provider configured as ``provider``, trained on ``dataset_version``.

    ValueError if the job has made no model (it has not succeeded).
    """
    if not job.fine_tuned_model:
        raise ValueError(f"fine-tuning job {job.id} ({job.status}) has made no model")
    return ModelRecord(
        model_id=job.fine_tuned_model,
        provider=provider,
        base_model=job.model,
        job_id=job.id,
        dataset_version=dataset_version,
    )
