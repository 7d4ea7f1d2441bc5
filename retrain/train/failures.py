"""Why a fine-tuning job failed, and what that means for the nights after it.

Three kinds, each with its own consequence:

- **transient**: the service failed during the job, an operator cancelled it, or it ended
  without a model and said nothing more. The next night trains the same dataset version again.
- **permanent for the dataset version**: another try on the same data meets the same end. The
  provider's post-training safety or moderation evaluation refused the model, it found the
  training file invalid, or the base model cannot be trained on it. The failure is recorded,
  create-only, at ``state/failures/{dataset_version}.json``, and that version is never trained
  again. The night that found it fails (so the failed-night alert fires once); later nights end
  ``NoNewData`` and say why, until new examples make a new dataset version.
- **configuration**: the provider refused to create the job because of a setting (a base model
  it does not fine-tune, a hyperparameter it does not accept). No job exists and nothing is
  recorded: every night stops there with the fix in one line (a ``ConfigError``) until the
  setting changes, and then trains the same version.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Literal

from openai.types.fine_tuning import FineTuningJob
from pydantic import BaseModel, ConfigDict, Field

from retrain.config.services import ProviderSettings
from retrain.exceptions import AlreadyExists, ConfigError
from retrain.providers.clients import BAD_REQUEST, NOT_FOUND, StatusError, error_detail, error_field
from retrain.storage.layout import failure_key
from retrain.storage.object_store import ObjectStore

__all__ = [
    "FailureKind",
    "PermanentFailure",
    "configuration_refusal",
    "job_failure_kind",
    "load_failure",
    "permanent_failure",
    "save_failure",
]

logger = logging.getLogger(__name__)

FailureKind = Literal["transient", "permanent"]

# Error codes of a failed job that another try on the same data would meet again.
_PERMANENT_CODES = frozenset(
    {
        "invalid_training_file",
        "invalid_validation_file",
        "invalid_file_format",
        "invalid_n_examples",
        "file_too_large",
        "safety_check_failed",
        "moderation_failed",
        "model_not_available",
        "unsupported_model",
    }
)
# The same, said in the message of a job whose code is generic.
_PERMANENT_MESSAGE = re.compile(
    r"moderation|safety check|usage polic|unsafe training|not (?:available|supported) for fine-tuning"
    r"|invalid file format",
    re.IGNORECASE,
)
# A refused hyperparameter (the last segment of the error's ``param``) -> its setting.
_HYPERPARAMETERS = (
    *("n_epochs", "batch_size", "learning_rate_multiplier", "beta"),
    *("learning_rate", "lora_r", "lora_alpha", "n_checkpoints"),  # Together's
)


def job_failure_kind(code: str | None, message: str | None) -> FailureKind:
    """Whether a failed job's error is permanent for its data; anything unrecognised is transient."""
    if code in _PERMANENT_CODES or _PERMANENT_MESSAGE.search(message or ""):
        return "permanent"
    return "transient"


class PermanentFailure(BaseModel):
    """A dataset version that will not be trained again, and the job that showed why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset_version: str
    job_id: str
    provider: str
    code: str
    message: str
    config_hash: str = ""
    run_id: str = ""
    failed_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def summary(self) -> str:
        """``job ftjob-1 failed permanently (safety_check_failed: ...)``."""
        return f"job {self.job_id} failed permanently ({self.code}: {self.message})"


def permanent_failure(job: FineTuningJob, provider: ProviderSettings) -> PermanentFailure | None:
    """The permanent failure a job ended in, or None (it did not fail, or only transiently)."""
    if job.status != "failed":
        return None
    code = job.error.code if job.error else None
    message = (job.error.message if job.error else None) or "no message given"
    if job_failure_kind(code, message) != "permanent":
        return None
    metadata = job.metadata or {}
    return PermanentFailure(
        dataset_version=metadata.get("dataset_version", ""),
        job_id=job.id,
        provider=provider.name,
        code=code or "failed",
        message=message,
        config_hash=metadata.get("config_hash", ""),
        run_id=metadata.get("run_id", ""),
    )


def save_failure(store: ObjectStore, failure: PermanentFailure) -> PermanentFailure:
    """Record the version's permanent failure; the first one recorded stays."""
    try:
        store.put_json(
            failure_key(failure.dataset_version), failure.model_dump(mode="json"), create_only=True
        )
    except AlreadyExists:
        kept = load_failure(store, failure.dataset_version)
        assert kept is not None
        logger.info(
            "dataset version %s already failed permanently; keeping that record", kept.dataset_version
        )
        return kept
    return failure


def load_failure(store: ObjectStore, dataset_version: str) -> PermanentFailure | None:
    data = store.get_json_or_none(failure_key(dataset_version))
    return None if data is None else PermanentFailure.model_validate(data)


def configuration_refusal(
    exc: StatusError, provider: ProviderSettings, base_model: str
) -> ConfigError | None:
    """A job creation refused (400, 404) because of a setting, as a ConfigError with the fix; else None.

    A 403 is left to ``api_errors``: on OpenAI's own API it is the fine-tuning wind-down, whose
    hint says what to do.
    """
    param, code = error_field(exc, "param"), error_field(exc, "code")
    detail = error_detail(exc, provider)
    where = f"provider {provider.name!r} refused to create the fine-tuning job"
    if not isinstance(exc, BAD_REQUEST + NOT_FOUND):
        return None
    group = "RETRAIN_TOGETHER__" if provider.kind == "together" else "RETRAIN_TRAINING__"
    if param == "model" or code in {"model_not_available", "model_not_found", "unsupported_model"}:
        return ConfigError(
            f"{where}: it does not fine-tune base model {base_model!r} ({detail}); "
            f"set {group}BASE_MODEL to one it does"
        )
    name = param.rsplit(".", 1)[-1]
    if name in _HYPERPARAMETERS or name in ("seed", "suffix"):
        return ConfigError(f"{where} ({detail}): fix {group}{name.upper()}")
    if param.startswith("method"):
        return ConfigError(
            f"{where} ({detail}): fix RETRAIN_TRAINING__METHOD or its hyperparameters "
            "(RETRAIN_TRAINING__N_EPOCHS, __BATCH_SIZE, __LEARNING_RATE_MULTIPLIER, __BETA)"
        )
    return None
