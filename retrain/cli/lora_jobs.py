"""`retrain jobs ...` for the lora backend: its jobs are `train-lora` flow runs on the Prefect
server, found through the job records the nightly flow keeps in ``state/jobs/``, with their
progress and adapter manifest from the run's prefix in the bucket."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from rich.console import Console

from retrain.cli.output import Rows, print_fields, print_json
from retrain.cli.prefect_api import require_prefect_api
from retrain.exceptions import ConfigError
from retrain.storage.layout import JOB_PREFIX
from retrain.storage.object_store import ObjectStore
from retrain.train.jobs import job_records
from retrain.train.lora.runs import LoraRun, read_manifest, read_progress, run_status

__all__ = ["cancel_lora_job", "list_lora_jobs", "show_lora_job"]


def _records(store: ObjectStore) -> list[dict[str, Any]]:
    return [record for _, record in job_records(store, backend="lora")]


def _record(store: ObjectStore, job_id: str) -> dict[str, Any]:
    for record in _records(store):
        if record["job_id"] == job_id:
            return record
    raise ConfigError(
        f"no lora training run {job_id} in {store.uri(JOB_PREFIX)}: `retrain jobs list` shows the "
        "runs the nightly flow started"
    )


def _live(job_ids: list[str]) -> dict[str, Any]:
    """The flow runs of these ids on the Prefect server, by id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    require_prefect_api()
    if not job_ids:
        return {}
    runs_filter = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(job_id) for job_id in job_ids]))
    with get_client(sync_client=True) as client:
        return {str(run.id): run for run in client.read_flow_runs(flow_run_filter=runs_filter)}


def _status(record: dict[str, Any], flow_run: Any) -> str:
    """The run's status now (the record's, when the Prefect server no longer has the run)."""
    if flow_run is None:
        return f"{record.get('status', '-')} (not on the Prefect server)"
    return run_status(flow_run.state_type.value if flow_run.state_type else None)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _run(record: dict[str, Any]) -> LoraRun:
    return LoraRun(record["dataset_version"], record["config_hash"], str(record.get("base_model", "-")))


def list_lora_jobs(store: ObjectStore, console: Console, *, limit: int, as_json: bool) -> None:
    records = sorted(_records(store), key=lambda r: str(r.get("recorded_at", "")), reverse=True)[:limit]
    live = _live([record["job_id"] for record in records])
    if as_json:
        print_json([record | {"status": _status(record, live.get(record["job_id"]))} for record in records])
        return
    if not records:
        console.print(f"no lora training runs recorded in {store.uri(JOB_PREFIX)}")
        return
    columns = ("Job", "Status", "Base model", "Model", "Dataset version", "Created (UTC)")
    table = Rows("lora training runs (train-lora flow runs)", columns)
    for record in records:
        flow_run = live.get(record["job_id"])
        table.add_row(
            record["job_id"],
            _status(record, flow_run),
            str(record.get("base_model", "-")),
            str(record.get("model_id", "-")),
            record["dataset_version"],
            _when(flow_run.created if flow_run is not None else None),
        )
    table.print(console)


def show_lora_job(store: ObjectStore, console: Console, job_id: str) -> None:
    record = _record(store, job_id)
    flow_run = _live([job_id]).get(job_id)
    run = _run(record)
    manifest = read_manifest(store, run)
    progress = read_progress(store, run)
    rows = {
        "status": _status(record, flow_run),
        "backend": "lora",
        "flow run": flow_run.name if flow_run is not None else str(record.get("run_id", "-")),
        "base model": run.base_model,
        "model": str(record.get("model_id", run.model_id)),
        "dataset version": run.dataset_version,
        "config hash": run.config_hash,
        "attempt": str(record.get("attempt", 1)),
        "nightly flow run": str(record.get("flow_run_id", "-")),
        "created (UTC)": _when(flow_run.created if flow_run is not None else None),
        "run time": "-" if flow_run is None else f"{flow_run.estimated_run_time.total_seconds():.0f} s",
        "training data": store.uri(run.train_key),
        "adapter": manifest.uri if manifest else "-",
        "content hash": manifest.content_hash if manifest else "-",
        "trained tokens": "-"
        if manifest is None or manifest.train_tokens is None
        else f"{manifest.train_tokens:,}",
    }
    if progress is not None:
        rows["progress"] = f"step {progress.step} of {progress.total_steps}"
    if flow_run is not None and flow_run.state is not None and flow_run.state.message:
        rows["message"] = flow_run.state.message
    print_fields(console, f"lora training run {job_id}", rows)
    if progress is not None and progress.loss:
        table = Rows("Loss", ("Step", "Train loss", "Valid loss"))
        for point in progress.loss:
            valid = "-" if point.valid_loss is None else f"{point.valid_loss:.4f}"
            table.add_row(str(point.step), f"{point.train_loss:.4f}", valid)
        table.print(console)


def cancel_lora_job(store: ObjectStore, console: Console, job_id: str) -> None:
    from tasks.lora import cancel_lora_run

    _record(store, job_id)
    require_prefect_api()
    if cancel_lora_run(UUID(job_id), "cancelled with `retrain jobs cancel`"):
        console.print(f"job {job_id}: cancelling (its worker stops the training run)")
    else:
        console.print(f"job {job_id} already ended; nothing to cancel")
