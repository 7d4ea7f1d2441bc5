"""`retrain jobs ...`: the training jobs of the configured backend: list, show, cancel.

A provider's fine-tuning jobs (``openai_api``, ``together``) are read from its API (``JobApi``);
lora training runs (their
ids are the `train-lora` flow runs' UUIDs) from the job records and the Prefect server
(``retrain.cli.lora_jobs``). `show` and `cancel` tell the two apart by the id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

import typer
from openai.types.fine_tuning import FineTuningJob
from rich.console import Console

from retrain.cli.credentials import with_credentials
from retrain.cli.lora_jobs import cancel_lora_job, list_lora_jobs, show_lora_job
from retrain.cli.output import AsJson, Rows, plain_console, print_fields, print_json
from retrain.config.services import ProviderSettings
from retrain.config.settings import get_settings
from retrain.exceptions import ProviderError
from retrain.providers.clients import api_errors, make_training_client, provider_named
from retrain.storage.object_store import ObjectStore
from retrain.train.job_api import JobApi, TrainingClient, job_api
from retrain.train.jobs import ACTIVE_STATUSES, cancel_job

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Fine-tuning jobs: list them, show one, cancel one.")

JobId = Annotated[
    str,
    typer.Argument(help="The job id, e.g. ftjob-abc123, or a lora run's flow run id.", show_default=False),
]
ProviderName = Annotated[
    str | None,
    typer.Option("--provider", help="A configured provider name; default: the training provider."),
]


def _provider(name: str | None) -> tuple[TrainingClient, ProviderSettings, JobApi]:
    settings = get_settings()
    provider = with_credentials(
        settings.training_provider() if name is None else provider_named(settings, name)
    )
    client = make_training_client(provider)
    return client, provider, job_api(client, provider, _store())


def _job(api: JobApi, job_id: str) -> FineTuningJob:
    job = api.retrieve(job_id)
    if job is None:
        raise ProviderError(
            f"provider {api.provider.name!r} has no fine-tuning job {job_id}: "
            "`retrain jobs list` shows the ids (--provider NAME for another provider)"
        )
    return job


def _console() -> Console:
    return plain_console()


def _store() -> ObjectStore:
    return ObjectStore.from_settings(get_settings().s3)


def _is_lora_run(job_id: str) -> bool:
    """A lora training run's id is its flow run's UUID; a provider's job ids are not UUIDs."""
    try:
        UUID(job_id)
    except ValueError:
        return False
    return True


def _when(timestamp: int | None) -> str:
    return "-" if not timestamp else f"{datetime.fromtimestamp(timestamp, UTC):%Y-%m-%d %H:%M}"


@app.command("list")
def list_jobs(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many, newest first.")] = 20,
    provider: ProviderName = None,
    backend: Annotated[
        Literal["openai_api", "lora", "together"] | None,
        typer.Option("--backend", help="Whose jobs; default: RETRAIN_TRAINING__BACKEND."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The newest training jobs of the backend: a provider's fine-tuning jobs, or lora runs."""
    if (backend or get_settings().training.backend) == "lora":
        list_lora_jobs(_store(), _console(), limit=limit, as_json=as_json)
        return
    _, settings, api = _provider(provider)
    with api_errors("listing fine-tuning jobs", settings):
        jobs = api.recent_jobs(limit)
    if as_json:
        print_json([job.model_dump(mode="json") for job in jobs])
        return
    if not jobs:
        _console().print(f"no fine-tuning jobs on provider {settings.name!r}")
        return
    columns = ("Job", "Status", "Base model", "Fine-tuned model", "Dataset version", "Created (UTC)")
    table = Rows(f"Fine-tuning jobs on {settings.name}", columns)
    for job in jobs:
        table.add_row(
            job.id,
            job.status,
            job.model,
            job.fine_tuned_model or "-",
            (job.metadata or {}).get("dataset_version", "-"),
            _when(job.created_at),
        )
    table.print(_console())


@app.command()
def show(job_id: JobId, provider: ProviderName = None) -> None:
    """One job: its fields, checkpoints and latest events (a lora run: progress, loss, adapter)."""
    if _is_lora_run(job_id):
        show_lora_job(_store(), _console(), job_id)
        return
    _, settings, api = _provider(provider)
    with api_errors(f"reading fine-tuning job {job_id}", settings):
        job = _job(api, job_id)
        checkpoints = api.checkpoints(job_id)[:20]
        events = sorted(api.events(job_id), key=lambda e: e.created_at)[-10:]
    rows = {
        "status": job.status,
        "provider": settings.name,
        "base model": job.model,
        "fine-tuned model": job.fine_tuned_model or "-",
        "method": job.method.type if job.method else "-",
        "trained tokens": "-" if job.trained_tokens is None else f"{job.trained_tokens:,}",
        "created (UTC)": _when(job.created_at),
        "finished (UTC)": _when(job.finished_at),
        "training file": job.training_file,
        "validation file": job.validation_file or "-",
        **{f"metadata.{key}": value for key, value in sorted((job.metadata or {}).items())},
    }
    if job.error and job.error.message:
        rows["error"] = f"{job.error.code}: {job.error.message}"
    console = _console()
    print_fields(console, f"Fine-tuning job {job.id}", {key: str(value) for key, value in rows.items()})
    if checkpoints:
        table = Rows("Checkpoints", ("Step", "Model", "Train loss", "Valid loss", "Full valid loss"))
        for checkpoint in checkpoints:
            metrics = checkpoint.metrics
            table.add_row(
                str(checkpoint.step_number),
                checkpoint.fine_tuned_model_checkpoint,
                *(
                    "-" if value is None else f"{value:.4f}"
                    for value in (metrics.train_loss, metrics.valid_loss, metrics.full_valid_loss)
                ),
            )
        table.print(console)
    if events:
        log = Rows("Latest events", ("Time (UTC)", "Message"))
        for event in sorted(events, key=lambda e: e.created_at):
            log.add_row(_when(event.created_at), event.message)
        log.print(console)


@app.command()
def cancel(job_id: JobId, provider: ProviderName = None) -> None:
    """Cancel a job that is still validating, queued, running or paused."""
    if _is_lora_run(job_id):
        cancel_lora_job(_store(), _console(), job_id)
        return
    client, settings, api = _provider(provider)
    store = _store()
    with api_errors(f"reading fine-tuning job {job_id}", settings):
        before = _job(api, job_id).status
    if before not in ACTIVE_STATUSES:
        _console().print(f"job {job_id} already ended ({before}); nothing to cancel")
        return
    job = cancel_job(client, store, settings, job_id)
    _console().print(f"job {job.id}: {before} -> {job.status}")
