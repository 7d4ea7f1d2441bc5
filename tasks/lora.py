"""The nightly flow's side of the lora backend: start the `train-lora` deployment on its work pool,
wait for it as for any training job, and cancel it with the night (logic in retrain.train.lora.runs).

The training run is a Prefect flow run of the deployment in ``RETRAIN_LORA__DEPLOYMENT``, created
with ``run_deployment(timeout=0)`` and an idempotency key from the dataset version and config hash:
a night re-run after a crash gets the same flow run back instead of starting a second one. Its
record in ``state/jobs/`` (as for a provider's job) names the nightly flow run that owns it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelling

from retrain.curate.training_files import TrainingFiles
from retrain.exceptions import ConfigError, FineTuneFailed
from retrain.registry.records import ModelRecord
from retrain.report.training import training_metrics_markdown
from retrain.storage.layout import job_key
from retrain.train.budget import GpuRun, check_month_spend, record_gpu_run
from retrain.train.jobs import job_records
from retrain.train.lora.runs import (
    LoraRun,
    lora_run,
    put_training_inputs,
    read_manifest,
    read_progress,
    run_status,
)
from retrain.train.result import TrainingResult
from tasks.context import task_context
from tasks.progress import TaskProgress
from tasks.retry import IO_TASK

__all__ = [
    "StartedRun",
    "cancel_lora_run",
    "cancel_lora_runs_of",
    "start_lora_training",
    "upload_lora_inputs",
    "wait_for_lora_training",
]

_FAILED = {"FAILED", "CRASHED", "CANCELLED", "CANCELLING"}


@dataclass(frozen=True)
class StartedRun:
    """The training flow run of a lora run, and whether an earlier night had started it."""

    run: LoraRun
    flow_run_id: UUID
    name: str
    resumed: bool
    created: datetime


def _run_for(production: ModelRecord, version_id: str) -> LoraRun:
    """The run for the version: from production's adapter when configured and it has one."""
    lora = task_context().settings.lora
    continues = (
        lora.continue_from_production and production.artifact and production.base_model == lora.base_model
    )
    if continues:
        return lora_run(lora, version_id, init_adapter=production.artifact, init_hash=production.content_hash)
    return lora_run(lora, version_id)


@task(name="upload-lora-inputs", **IO_TASK)
def upload_lora_inputs(version_id: str, files: TrainingFiles, production: ModelRecord) -> LoraRun:
    """Write the version's training files under the run's prefix (create-only); the run to start."""
    run = _run_for(production, version_id)
    put_training_inputs(task_context().store, run, files.train, files.validation)
    start = f", continuing from {production.model_id}" if run.init_adapter else ""
    get_run_logger().info(
        "lora run %s: %d training + %d validation examples at %s%s",
        run.model_id,
        files.train_examples,
        files.validation_examples,
        task_context().store.uri(run.prefix),
        start,
    )
    return run


def _status(flow_run: FlowRun) -> str:
    return run_status(flow_run.state_type.value if flow_run.state_type else None)


def _created(flow_run: FlowRun) -> datetime:
    return flow_run.created or datetime.now(UTC)


def _record(run: LoraRun, flow_run: FlowRun, attempt: int) -> dict[str, Any]:
    return {
        "job_id": str(flow_run.id),
        "status": _status(flow_run),
        "backend": "lora",
        "dataset_version": run.dataset_version,
        "config_hash": run.config_hash,
        "base_model": run.base_model,
        "model_id": run.model_id,
        "provider": task_context().settings.lora.serving_provider,
        "attempt": attempt,
        "run_id": flow_run.name,
        "flow_run_id": current_flow_run.id,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _attempt(record: dict[str, Any] | None) -> int:
    """1, or one more than the last attempt when that training run failed."""
    if record is None or record.get("backend") != "lora":
        return 1
    attempt = int(record.get("attempt", 1))
    with get_client(sync_client=True) as client:
        try:
            previous = client.read_flow_run(UUID(record["job_id"]))
        except PrefectObjectNotFound:
            return attempt + 1
    ended_badly = previous.state_type is not None and previous.state_type.value in _FAILED
    return attempt + 1 if ended_badly else attempt


def _dispatch(run: LoraRun, attempt: int) -> FlowRun:
    """The flow run of the deployment with this run's idempotency key: created, or found."""
    lora = task_context().settings.lora
    try:
        # Called from a sync task, so Prefect's async_dispatch runs the sync variant: a FlowRun.
        return cast(
            "FlowRun",
            run_deployment(
                lora.deployment,
                parameters=run.parameters() | {"config": lora.model_dump(mode="json")},
                timeout=0,
                idempotency_key=run.idempotency_key(attempt),
                flow_run_name=f"train-lora-{run.model_id}",
                tags=["retrain", "training", "lora"],
            ),
        )
    except PrefectObjectNotFound:
        raise ConfigError(
            f"no Prefect deployment {lora.deployment!r} to train with: deploy it (`retrain serve`, or "
            "`prefect deploy` from deployments/prefect.yaml) or set RETRAIN_LORA__DEPLOYMENT"
        ) from None


@task(name="start-lora-training", **IO_TASK)
def start_lora_training(run: LoraRun) -> StartedRun:
    """The `train-lora` flow run for this run: created once, found again by its idempotency key."""
    context = task_context()
    lora = context.settings.lora
    key = job_key(run.dataset_version, run.config_hash)
    before = context.store.get_json_or_none(key)
    attempt = _attempt(before)
    check_month_spend(
        context.store,
        context.settings.training,
        dataset_version=run.dataset_version,
        config_hash=run.config_hash,
        today=datetime.now(UTC).date(),
    )
    flow_run = _dispatch(run, attempt)
    while flow_run.state_type is not None and flow_run.state_type.value in _FAILED:
        # The key's run ended badly and no record said so (the record was lost): a new attempt.
        attempt += 1
        flow_run = _dispatch(run, attempt)
    resumed = before is not None and before.get("job_id") == str(flow_run.id)
    context.store.put_json(key, _record(run, flow_run, attempt))
    _count(run, flow_run, _status(flow_run))
    get_run_logger().info(
        "%s training run %s (%s) on deployment %s, attempt %d",
        "resumed" if resumed else "started",
        flow_run.name,
        flow_run.id,
        lora.deployment,
        attempt,
    )
    return StartedRun(run, flow_run.id, flow_run.name, resumed, _created(flow_run))


def _count(run: LoraRun, flow_run: FlowRun, status: str, trained_tokens: int | None = None) -> None:
    """The run in the month's ledger (``retrain spend``), priced at ``gpu_hour_usd`` once ended."""
    context = task_context()
    # estimated_run_time: the run time so far, also of a run cancelled while it was running
    seconds = flow_run.estimated_run_time.total_seconds()
    gpu_run = GpuRun(
        str(flow_run.id),
        _created(flow_run),
        run.dataset_version,
        run.config_hash,
        status,
        gpu_seconds=seconds,
        trained_tokens=trained_tokens,
    )
    record_gpu_run(context.store, gpu_run, context.settings.lora.gpu_hour_usd)


def _settle(run: LoraRun, flow_run: FlowRun, status: str, trained_tokens: int | None) -> None:
    """An ended run: its status in its job record and its GPU time (and cost) in the ledger."""
    store = task_context().store
    key = job_key(run.dataset_version, run.config_hash)
    record = store.get_json_or_none(key)
    if record is not None and record.get("job_id") == str(flow_run.id):
        store.put_json(key, {**record, "status": status})
    _count(run, flow_run, status, trained_tokens)


def _result(started: StartedRun, status: str) -> TrainingResult:
    context = task_context()
    store, lora, run = context.store, context.settings.lora, started.run
    manifest = read_manifest(store, run) if status == "succeeded" else None
    if status == "succeeded" and manifest is None:
        raise FineTuneFailed(
            f"training run {started.name} completed but saved no adapter manifest at "
            f"{store.uri(run.manifest_key)}; the next night starts a new attempt"
        )
    progress = read_progress(store, run)
    return TrainingResult(
        job_id=str(started.flow_run_id),
        status=status,
        base_model=run.base_model,
        provider=lora.serving_provider,
        backend="lora",
        resumed=started.resumed,
        model_id=run.model_id if manifest is not None else None,
        loss=progress.loss if progress else [],
        trained_tokens=manifest.train_tokens if manifest else None,
        artifact=manifest.uri if manifest else None,
        content_hash=manifest.content_hash if manifest else None,
    )


@task(name="wait-for-lora-training", **IO_TASK)
def wait_for_lora_training(started: StartedRun) -> TrainingResult:
    """Poll the training flow run until it ends or the wait limit; its progress as it goes."""
    context = task_context()
    training = context.settings.training
    logger = get_run_logger()
    progress: TaskProgress | None = None
    deadline = time.monotonic() + training.wait_limit_seconds
    delay = training.poll_interval_seconds
    last_state = ""
    with get_client(sync_client=True) as client:
        while True:
            current = client.read_flow_run(started.flow_run_id)
            state = current.state_type.value if current.state_type else "SCHEDULED"
            if state != last_state:
                logger.info("training run %s: %s", current.name, current.state_name or state)
                last_state = state
            seen = read_progress(context.store, started.run)
            if seen is not None and seen.total_steps > 0:
                progress = progress or TaskProgress(f"training run {current.name}", key="training-progress")
                progress.update(
                    seen.step, seen.total_steps, seen.message or f"step {seen.step} of {seen.total_steps}"
                )
            if state == "COMPLETED":
                result = _result(started, "succeeded")
                _settle(started.run, current, "succeeded", result.trained_tokens)
                break
            if state in _FAILED:
                _settle(
                    started.run, current, "cancelled" if state == "CANCELLING" else run_status(state), None
                )
                message = current.state.message if current.state else ""
                raise FineTuneFailed(
                    f"training run {current.name} ended {state.lower()} ({message or 'no message'}); "
                    "the next night starts a new attempt"
                )
            if time.monotonic() >= deadline:
                logger.warning(
                    "training run %s is still %s at the wait limit; the next run resumes it",
                    current.name,
                    state,
                )
                result = _result(started, state.lower())
                break
            time.sleep(delay + random.uniform(0, delay / 4))
            delay = min(delay * 1.5, training.max_poll_interval_seconds)
    if result.loss:
        create_markdown_artifact(
            training_metrics_markdown(result.loss),
            key="training-metrics",
            description=f"Loss of {result.job_id}",
        )
    return result


def cancel_lora_run(flow_run_id: UUID, reason: str) -> bool:
    """Set a training flow run Cancelling (its worker stops it) and mark its job record and ledger
    entry cancelled; False when it had already ended."""
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        if flow_run.state is None or flow_run.state.is_final():
            return False
        client.set_flow_run_state(flow_run.id, Cancelling(message=reason))
    parameters = flow_run.parameters
    run = LoraRun(parameters["dataset_version"], parameters["config_hash"], parameters["base_model"])
    _settle(run, flow_run, "cancelled", None)
    return True


def cancel_lora_runs_of(flow_run_id: str) -> list[str]:
    """Cancel the training flow runs whose job records name ``flow_run_id`` as their owner."""
    store = task_context().store
    owned = [
        UUID(record["job_id"])
        for _, record in job_records(store, backend="lora")
        if record.get("flow_run_id") == flow_run_id
    ]
    reason = f"nightly run {flow_run_id} was cancelled"
    return [str(run_id) for run_id in owned if cancel_lora_run(run_id, reason)]
