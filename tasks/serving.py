"""Prefect tasks that keep the serving endpoint's adapters in step with the registry: a model with
an adapter (the lora backend's) is loaded into the vLLM-compatible server before it is evaluated or
served, and a rejected candidate's is unloaded (logic in retrain.train.lora.serving)."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import get_run_logger, task

from retrain.registry.records import ModelRecord
from retrain.train.lora.serving import adapter_path, retire_record, serve_record
from tasks.context import task_context
from tasks.retry import IO_TASK

__all__ = ["retire_model", "serve_models"]


@task(name="serve-models", **IO_TASK)
def serve_models(records: Sequence[ModelRecord]) -> None:
    """Load each record's adapter into the endpoint that serves it (already loaded: nothing to do)."""
    settings, logger = task_context().settings, get_run_logger()
    for record in records:
        loaded = serve_record(settings, record)
        if loaded is not None:
            state = "loaded" if loaded else "was loaded already"
            logger.info("adapter %s %s (%s)", record.model_id, state, adapter_path(settings, record))


@task(name="retire-model", **IO_TASK)
def retire_model(record: ModelRecord) -> None:
    """Unload a rejected candidate's adapter; production's stays loaded."""
    if retire_record(task_context().settings, record) is not None:
        get_run_logger().info("adapter %s unloaded from %s", record.model_id, record.provider)
