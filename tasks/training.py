"""The trainer interface: what the nightly flow needs from a training backend, and the
backends behind it (``RETRAIN_TRAINING__BACKEND``).

- ``openai_api``: a fine-tuning job on the provider's API (OpenAI, Azure OpenAI or any
  compatible server; tasks in ``tasks.finetune``);
- ``together``: a fine-tuning job on Together AI, through the same tasks: the task context's
  training client is then the together SDK's, behind ``retrain.train.job_api``;
- ``lora``: a `train-lora` flow run on a work pool, LoRA on an open-weight model, its adapter
  served by a vLLM-compatible endpoint (tasks in ``tasks.lora``).

Each step is a Prefect task of its backend, so the flow's run graph reads the same whichever
backend trains: estimate, prepare, start, wait. A backend's prepared inputs and started job are
its own types; the flow only passes them on. The result is a ``TrainingResult``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from retrain.config.settings import Settings
from retrain.curate.training_files import TrainingFiles
from retrain.registry.records import ModelRecord
from retrain.train.budget import BudgetCheck
from retrain.train.result import TrainingResult
from tasks.context import task_context
from tasks.finetune import (
    check_training_budget,
    start_fine_tuning_job,
    upload_training_files,
    wait_for_fine_tuning_job,
)
from tasks.lora import cancel_lora_runs_of, start_lora_training, upload_lora_inputs, wait_for_lora_training

__all__ = ["JobApiTrainer", "LoraTrainer", "Trainer", "cancel_training_of_run", "trainer_for"]


class Trainer(Protocol):
    """One training backend, as the nightly flow drives it."""

    name: str

    def estimate(self, version_id: str, files: TrainingFiles) -> BudgetCheck | None:
        """What training will cost, refused (BudgetExceeded) over the limits; None: not priced."""
        ...

    def prepare(self, version_id: str, files: TrainingFiles, production: ModelRecord) -> Any:
        """Put the training files where the job reads them (once per content)."""
        ...

    def start(
        self, prepared: Any, *, version_id: str, run_id: str, night: date, estimated_usd: float | None
    ) -> Any:
        """Create the job for (dataset version, config), or find the one an earlier run created."""
        ...

    def wait(self, started: Any) -> TrainingResult:
        """Wait for it, up to the wait limit, showing its progress."""
        ...

    def cancel_jobs_of_run(self, flow_run_id: str) -> list[str]:
        """Cancel the jobs the nightly flow run ``flow_run_id`` started or resumed."""
        ...


class JobApiTrainer:
    """Fine-tuning jobs through a provider's API: OpenAI's shape (``openai_api``) or Together's."""

    def __init__(self, name: str) -> None:
        self.name = name

    def estimate(self, version_id: str, files: TrainingFiles) -> BudgetCheck | None:
        return check_training_budget(version_id, files)

    def prepare(self, version_id: str, files: TrainingFiles, production: ModelRecord) -> Any:
        return upload_training_files(files)

    def start(
        self, prepared: Any, *, version_id: str, run_id: str, night: date, estimated_usd: float | None
    ) -> Any:
        return start_fine_tuning_job(version_id, prepared, run_id, night, estimated_usd)

    def wait(self, started: Any) -> TrainingResult:
        return wait_for_fine_tuning_job(started)

    def cancel_jobs_of_run(self, flow_run_id: str) -> list[str]:
        from retrain.train.jobs import cancel_jobs_of_run

        context = task_context()
        return cancel_jobs_of_run(
            context.training_client, context.store, context.training_provider, flow_run_id
        )


class LoraTrainer:
    """LoRA fine-tuning in the `train-lora` flow, on the work pool of its deployment."""

    name = "lora"

    def estimate(self, version_id: str, files: TrainingFiles) -> BudgetCheck | None:
        return None  # own hardware: no per-token price to check against the budget

    def prepare(self, version_id: str, files: TrainingFiles, production: ModelRecord) -> Any:
        return upload_lora_inputs(version_id, files, production)

    def start(
        self, prepared: Any, *, version_id: str, run_id: str, night: date, estimated_usd: float | None
    ) -> Any:
        return start_lora_training(prepared)

    def wait(self, started: Any) -> TrainingResult:
        return wait_for_lora_training(started)

    def cancel_jobs_of_run(self, flow_run_id: str) -> list[str]:
        return cancel_lora_runs_of(flow_run_id)


def trainer_for(settings: Settings) -> Trainer:
    """The backend ``RETRAIN_TRAINING__BACKEND`` names."""
    backend = settings.training.backend
    return LoraTrainer() if backend == "lora" else JobApiTrainer(backend)


def cancel_training_of_run(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow on_cancellation hook: cancel the training jobs this flow run started or resumed."""
    from prefect.logging.loggers import flow_run_logger

    logger = flow_run_logger(flow_run, flow)
    trainer = trainer_for(task_context().settings)
    cancelled = trainer.cancel_jobs_of_run(str(flow_run.id))
    if cancelled:
        logger.info("cancelled training job(s) %s with flow run %s", ", ".join(cancelled), flow_run.id)
    else:
        logger.info("flow run %s had no training job to cancel", flow_run.id)
