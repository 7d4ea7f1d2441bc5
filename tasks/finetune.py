"""Prefect tasks for fine-tuning (logic in retrain.train.finetune and retrain.train.budget)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run as current_flow_run
from together import Together

from retrain.config.stage_settings import TogetherSettings
from retrain.curate.training_files import TrainingFiles
from retrain.exceptions import FineTuneFailed
from retrain.providers.clients import api_errors
from retrain.report.training import training_metrics_markdown
from retrain.storage.layout import failure_key
from retrain.train.budget import (
    BudgetCheck,
    check_budget,
    estimate_training_cost,
    record_job_cost,
    reserve_job_cost,
)
from retrain.train.failures import permanent_failure, save_failure
from retrain.train.job_api import job_api
from retrain.train.job_spec import config_hash, job_spec
from retrain.train.jobs import TrainingJob, best_checkpoint, ensure_job, wait_for_job
from retrain.train.reports import loss_points, training_job_markdown, training_progress
from retrain.train.result import LossPoint, TrainingResult
from retrain.train.together_price import together_estimate
from retrain.train.uploads import delete_job_files, upload_dataset_files
from tasks.context import TaskContext, task_context
from tasks.progress import TaskProgress
from tasks.retry import IO_TASK

__all__ = [
    "check_training_budget",
    "start_fine_tuning_job",
    "upload_training_files",
    "wait_for_fine_tuning_job",
]


@task(name="check-training-budget", **IO_TASK)
def check_training_budget(version_id: str, files: TrainingFiles) -> BudgetCheck:
    """Price the training file and refuse (BudgetExceeded) before any job is created.

    OpenAI-shaped providers are priced from our table before anything is uploaded; Together is
    asked its own price, which it gives only for files it holds (uploaded once, reused by the job).
    """
    context = task_context()
    settings = context.settings
    client = context.training_client
    if isinstance(client, Together):
        estimate = together_estimate(
            client, context.store, context.training_provider, files, settings.together, settings.training
        )
    else:
        estimate = estimate_training_cost(files.train, settings.training, settings.validation)
    check = check_budget(
        context.store,
        estimate,
        settings.training,
        dataset_version=version_id,
        config_hash=config_hash(settings.training, _together(context)),
        today=datetime.now(UTC).date(),
    )
    usd = "unknown" if check.estimated_usd is None else f"${check.estimated_usd:,.2f}"
    tokens = "-" if estimate is None else f"{estimate.billable_tokens:,}"
    get_run_logger().info(
        "estimated training cost %s (%s billable tokens); %s spend so far $%.2f",
        usd,
        tokens,
        check.month,
        check.month_spend_usd,
    )
    return check


@task(name="upload-training-files", **IO_TASK)
def upload_training_files(files: TrainingFiles) -> tuple[str, str | None]:
    context = task_context()
    train, validation = upload_dataset_files(
        context.training_client, context.store, context.training_provider, files, context.settings.training
    )
    get_run_logger().info(
        "training file %s (%d examples), validation file %s (%d examples)",
        train,
        files.train_examples,
        validation,
        files.validation_examples,
    )
    return train, validation


@task(name="start-fine-tuning-job", **IO_TASK)
def start_fine_tuning_job(
    dataset_version: str,
    file_ids: tuple[str, str | None],
    run_id: str,
    night: date,
    estimated_usd: float | None = None,
) -> TrainingJob:
    context = task_context()
    spec = job_spec(
        context.settings.training,
        dataset_version=dataset_version,
        run_id=run_id,
        night=night,
        together=_together(context),
    )
    training = ensure_job(
        context.training_client,
        context.store,
        context.training_provider,
        spec,
        training_file=file_ids[0],
        validation_file=file_ids[1],
        owner=current_flow_run.id,
    )
    reserve_job_cost(
        context.store,
        training.job,
        estimated_usd,
        dataset_version=dataset_version,
        config_hash=spec.config_hash,
    )
    verb = "resumed" if training.resumed else "created"
    get_run_logger().info("%s fine-tuning job %s (%s)", verb, training.job.id, training.job.status)
    return training


def _after_the_job(context: TaskContext, job_id: str) -> FineTuningJob:
    """Once a job ended: record what it cost and, if configured, delete our uploaded files."""
    client, provider = context.training_client, context.training_provider
    with api_errors(f"reading fine-tuning job {job_id}", provider):
        job = job_api(client, provider, context.store).retrieve(job_id)
    if job is None:
        raise FineTuneFailed(f"provider {provider.name!r} no longer knows fine-tuning job {job_id}")
    record_job_cost(context.store, job, context.settings.validation)
    if context.settings.training.delete_files_after_job:
        delete_job_files(client, context.store, provider, job)
    return job


@task(name="wait-for-fine-tuning-job", **IO_TASK)
def wait_for_fine_tuning_job(training: TrainingJob) -> TrainingResult:
    """Wait for the job; the result's ``model_id`` is the candidate model.

    With ``use_best_checkpoint`` that is the checkpoint with the lowest validation loss.
    """
    context = task_context()
    settings, client, provider = context.settings, context.training_client, context.training_provider
    logger = get_run_logger()
    events: list[FineTuningJobEvent] = []
    status = {"last": training.job.status}
    progress: TaskProgress | None = None  # created on the first metrics event that counts steps

    def log_event(event: FineTuningJobEvent) -> None:
        nonlocal progress
        events.append(event)
        if event.type != "metrics":
            logger.info("[%s] %s", training.job.id, event.message)
        steps = training_progress(event)
        if steps is not None:
            progress = progress or TaskProgress(f"fine-tuning job {training.job.id}", key="training-progress")
            progress.update(*steps)

    def log_status(job: FineTuningJob) -> None:
        if job.status != status["last"]:
            logger.info("job %s: %s -> %s", job.id, status["last"], job.status)
            status["last"] = job.status

    try:
        job = wait_for_job(
            client,
            provider,
            training.job.id,
            settings.training,
            store=context.store,
            on_event=log_event,
            on_status=log_status,
        )
    except FineTuneFailed:
        ended = _after_the_job(context, training.job.id)
        if (failure := permanent_failure(ended, provider)) is not None:  # never trained again
            failure = save_failure(context.store, failure)
            logger.error("recorded at %s: %s", failure_key(failure.dataset_version), failure.summary)
        raise
    finally:
        loss = loss_points(events)
        if loss:
            create_markdown_artifact(
                training_metrics_markdown(loss),
                key="training-metrics",
                description=f"Loss of job {training.job.id}, step by step",
            )
    if job.status == "succeeded":
        job = _after_the_job(context, job.id)
    create_markdown_artifact(
        training_job_markdown(job, provider.name, training.resumed),
        key="training-job",
        description=f"Fine-tuning job {job.id}",
    )
    if job.status == "succeeded" and settings.training.use_best_checkpoint:
        checkpoint = best_checkpoint(client, provider, job)
        if checkpoint is not None:
            logger.info("candidate is checkpoint %s instead of %s", checkpoint, job.fine_tuned_model)
            job = job.model_copy(update={"fine_tuned_model": checkpoint})
    return _result(job, provider.name, settings.training.backend, training.resumed, loss)


def _together(context: TaskContext) -> TogetherSettings | None:
    """The together backend's settings, which then decide the job; None for the openai_api backend."""
    settings = context.settings
    return settings.together if settings.training.backend == "together" else None


def _result(
    job: FineTuningJob, provider: str, backend: str, resumed: bool, loss: list[LossPoint]
) -> TrainingResult:
    return TrainingResult(
        job_id=job.id,
        status=job.status,
        base_model=job.model,
        provider=provider,
        backend=backend,
        resumed=resumed,
        model_id=job.fine_tuned_model if job.status == "succeeded" else None,
        loss=loss,
        trained_tokens=job.trained_tokens,
    )
