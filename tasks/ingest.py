"""Prefect tasks for ingestion and validation (logic in retrain.ingest.batches)."""

from __future__ import annotations

from collections.abc import Container

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from retrain.ingest.batches import IngestReport, ingest_objects
from retrain.ingest.discovery import discover
from retrain.ingest.summary import validation_markdown
from retrain.storage.object_store import ObjectInfo
from retrain.train.lora.special_tokens import training_special_tokens
from retrain.validate.moderation import moderation_line, moderator_for
from tasks.context import task_context
from tasks.progress import TaskProgress
from tasks.retry import IO_TASK

__all__ = ["discover_new_objects", "validate_and_curate"]


@task(name="discover-new-objects", **IO_TASK)
def discover_new_objects(reconcile: bool = False) -> list[ObjectInfo]:
    """New objects from the watermark on; everything under incoming/ when reconciling."""
    context = task_context()
    settings, store = context.settings, context.store
    store.check_bucket()
    found = discover(
        store, reconcile=reconcile or settings.ingest.reconcile, overlap_days=settings.ingest.overlap_days
    )
    get_run_logger().info(
        "%d new object(s) under %s (%d bytes; %d key(s) listed%s)",
        len(found.new),
        store.uri("incoming/"),
        sum(info.size for info in found.new),
        found.listed,
        ", full reconciliation" if found.reconciled else f" after {found.start_after}",
    )
    return found.new


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.1f} MB"


@task(name="validate-and-curate", **IO_TASK)
def validate_and_curate(objects: list[ObjectInfo], run_id: str, eval_prompts: Container[str]) -> IngestReport:
    context = task_context()
    settings, store = context.settings, context.store
    logger = get_run_logger()
    progress = TaskProgress(f"validating {len(objects)} new object(s)", key="validation-progress")
    report = ingest_objects(
        store,
        objects,
        settings,
        run_id=run_id,
        eval_prompts=eval_prompts,
        special_tokens=training_special_tokens(settings),
        moderator=moderator_for(settings.validation, lambda: context.training_provider),
        progress=lambda done, total: progress.update(done, total, f"{_mb(done)} of {_mb(total)} read"),
    )
    logger.info(
        "batch %s: %d lines read = %d accepted + %d quarantined %s",
        report.batch_id,
        report.lines_read,
        report.accepted,
        report.quarantined,
        dict(sorted(report.by_reason.items())),
    )
    if report.moderation:
        logger.info("moderation pre-check: %s", moderation_line(report.moderation))
    for message in report.failed_gates:
        logger.error("batch gate failed: %s", message)
    if report.data_docs_key:
        create_link_artifact(
            store.presigned_url(report.data_docs_key),
            link_text=f"Data Docs of batch {report.batch_id}",
            key="data-docs",
            description=f"Great Expectations Data Docs, stored at {store.uri(report.data_docs_key)}",
        )
    create_markdown_artifact(
        validation_markdown(report),
        key="validation-summary",
        description=f"Validation of {len(objects)} new object(s)",
    )
    return report
