"""Prefect tasks for fine-tuning (logic in retrain.finetune)."""

from __future__ import annotations

from datetime import date

from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from retrain.dataset import TrainingFiles
from retrain.finetune import TrainingJob, ensure_job, job_spec, upload_training_file, wait_for_job
from retrain.providers import make_client
from retrain.reports import metrics_rows, training_job_markdown
from retrain.settings import get_settings
from retrain.storage import ObjectStore
from tasks.retry import IO_TASK

__all__ = ["start_fine_tuning", "upload_training_files", "wait_for_fine_tuning"]


@task(name="upload-training-files", **IO_TASK)
def upload_training_files(files: TrainingFiles) -> tuple[str, str | None]:
    settings = get_settings()
    store = ObjectStore.from_settings(settings.s3)
    client = make_client(settings.provider)
    train = upload_training_file(client, store, settings.provider, files.train, role="train")
    validation = (
        upload_training_file(client, store, settings.provider, files.validation, role="validation")
        if files.validation_examples
        else None
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
def start_fine_tuning(
    dataset_version: str, file_ids: tuple[str, str | None], run_id: str, night: date
) -> TrainingJob:
    settings = get_settings()
    store = ObjectStore.from_settings(settings.s3)
    spec = job_spec(settings.training, dataset_version=dataset_version, run_id=run_id, night=night)
    training = ensure_job(
        make_client(settings.provider),
        store,
        settings.provider,
        spec,
        training_file=file_ids[0],
        validation_file=file_ids[1],
    )
    verb = "resumed" if training.resumed else "created"
    get_run_logger().info("%s fine-tuning job %s (%s)", verb, training.job.id, training.job.status)
    return training


@task(name="wait-for-fine-tuning-job", **IO_TASK)
def wait_for_fine_tuning(training: TrainingJob) -> FineTuningJob:
    settings = get_settings()
    logger = get_run_logger()
    events: list[FineTuningJobEvent] = []
    status = {"last": training.job.status}

    def log_event(event: FineTuningJobEvent) -> None:
        events.append(event)
        if event.type != "metrics":
            logger.info("[%s] %s", training.job.id, event.message)

    def log_status(job: FineTuningJob) -> None:
        if job.status != status["last"]:
            logger.info("job %s: %s -> %s", job.id, status["last"], job.status)
            status["last"] = job.status

    try:
        job = wait_for_job(
            make_client(settings.provider),
            settings.provider,
            training.job.id,
            settings.training,
            on_event=log_event,
            on_status=log_status,
        )
    finally:
        rows = metrics_rows(events)
        if rows:
            create_table_artifact(
                rows, key="training-metrics", description=f"Metrics of job {training.job.id}"
            )
    create_markdown_artifact(
        training_job_markdown(job, settings.provider.name, training.resumed),
        key="training-job",
        description=f"Fine-tuning job {job.id}",
    )
    return job
