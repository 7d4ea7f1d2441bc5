"""Which job a dataset version gets: its base model, method, hyperparameters, seed and names.

The config hash covers the settings that change what a job learns, so a changed setting trains the
same dataset version again and an unchanged one resumes (``retrain.train.jobs``). With the
together backend the spec carries Together's own job arguments (``together_options``), and its
suffix ends in a tag of the dataset version and config, by which the job is found again after a
crash (Together's jobs have no metadata).
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from retrain.config.stage_settings import TogetherSettings, TrainingSettings
from retrain.storage.layout import job_key

__all__ = ["JobSpec", "config_hash", "job_spec"]

_MAX_SUFFIX = 64
_TOGETHER_SUFFIX = 40  # Together's limit


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
    together_options: dict[str, Any] = field(default_factory=dict)

    @property
    def state_key(self) -> str:
        return job_key(self.dataset_version, self.config_hash)

    @property
    def tag(self) -> str:
        """Ten hex digits naming (dataset version, config): the end of a Together job's suffix."""
        return hashlib.sha256(f"{self.dataset_version}:{self.config_hash}".encode()).hexdigest()[:10]

    @property
    def together_suffix(self) -> str:
        return f"{self.suffix[: _TOGETHER_SUFFIX - len(self.tag) - 1]}-{self.tag}"


def _together_relevant(together: TogetherSettings) -> dict[str, Any]:
    return together.model_dump(mode="json", exclude={"provider"})


def config_hash(training: TrainingSettings, together: TogetherSettings | None = None) -> str:
    """A short hash of the settings that change what a job learns (not when or how long we wait).

    ``together``: the together backend's settings, which then decide the job instead of the
    OpenAI-shaped hyperparameters.
    """
    relevant: dict[str, Any]
    if together is not None:
        relevant = {"backend": "together", "seed": training.seed, **_together_relevant(together)}
    else:
        relevant = {
            "base_model": training.base_model,
            "method": training.method,
            "n_epochs": training.n_epochs,
            "batch_size": training.batch_size,
            "learning_rate_multiplier": training.learning_rate_multiplier,
            "seed": training.seed,
        }
        if training.method == "dpo":
            relevant["beta"] = training.beta
    return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def job_spec(
    training: TrainingSettings,
    *,
    dataset_version: str,
    run_id: str,
    night: date,
    together: TogetherSettings | None = None,
) -> JobSpec:
    hyperparameters: dict[str, float | str] = {
        "n_epochs": training.n_epochs,
        "batch_size": training.batch_size,
        "learning_rate_multiplier": training.learning_rate_multiplier,
    }
    if training.method == "dpo":
        hyperparameters["beta"] = training.beta
    digest = config_hash(training, together)
    suffix = f"{training.suffix}-{night:%Y%m%d}"[:_MAX_SUFFIX]
    return JobSpec(
        dataset_version=dataset_version,
        config_hash=digest,
        base_model=together.base_model if together else training.base_model,
        method={"type": training.method, training.method: {"hyperparameters": hyperparameters}},
        seed=training.seed,
        suffix=suffix,
        metadata={
            "dataset_version": dataset_version,
            "config_hash": digest,
            "run_id": run_id[:512],
            "pipeline_commit": _pipeline_commit(),
        },
        together_options=_together_options(together) if together else {},
    )


def _together_options(together: TogetherSettings) -> dict[str, Any]:
    """The arguments of the together SDK's ``fine_tuning.create`` these settings decide."""
    options: dict[str, Any] = {
        "n_epochs": together.n_epochs,
        "learning_rate": together.learning_rate,
        "batch_size": together.batch_size,
        "n_checkpoints": together.n_checkpoints,
        "lora": together.training_type == "lora",
    }
    if together.training_type == "lora":
        options |= {"lora_r": together.lora_r, "lora_alpha": together.lora_alpha}
    return options


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
