"""Prefect tasks that keep what serves the models in step with the registry: a model with an adapter
(the lora backend's) is loaded into the vLLM-compatible server, and a model on Azure OpenAI is
deployed, before it is evaluated or served; a rejected candidate's adapter is unloaded and its
deployment deleted; after a night only the deployments production needs are kept (logic in
retrain.train.lora.serving and retrain.registry.deployments)."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import get_run_logger, task

from retrain.registry.deployments import deployed, settle_deployments, undeploy
from retrain.registry.records import ModelRecord
from retrain.train.lora.serving import adapter_path, retire_record, serve_record
from tasks.context import task_context
from tasks.retry import IO_TASK

__all__ = ["retire_model", "serve_models", "settle_model_deployments"]


@task(name="serve-models", **IO_TASK)
def serve_models(records: Sequence[ModelRecord], *, production: bool = False) -> list[ModelRecord]:
    """Load each record's adapter into the endpoint that serves it and deploy each Azure model
    (``production``: on the production SKU); the records, with the deployments that serve them."""
    settings, logger = task_context().settings, get_run_logger()
    served = []
    for record in records:
        loaded = serve_record(settings, record)
        if loaded is not None:
            state = "loaded" if loaded else "was loaded already"
            logger.info("adapter %s %s (%s)", record.model_id, state, adapter_path(settings, record))
        serving = deployed(settings, record, production=production)
        if serving.deployment:
            logger.info("%s serves through Azure deployment %s", serving.model_id, serving.deployment)
        served.append(serving)
    return served


@task(name="retire-model", **IO_TASK)
def retire_model(record: ModelRecord) -> None:
    """Unload a rejected candidate's adapter and delete its deployment; production's stay."""
    settings, logger = task_context().settings, get_run_logger()
    if retire_record(settings, record) is not None:
        logger.info("adapter %s unloaded from %s", record.model_id, record.provider)
    if (name := undeploy(settings, record)) is not None:
        logger.info("deleted deployment %s of rejected candidate %s", name, record.model_id)


@task(name="settle-deployments", **IO_TASK)
def settle_model_deployments() -> list[str]:
    """Production on the production SKU; delete deployments beyond RETRAIN_AZURE__KEEP_DEPLOYMENTS."""
    context = task_context()
    deleted = settle_deployments(context.settings, context.registry)
    if deleted:
        get_run_logger().info("deleted Azure deployments %s", ", ".join(deleted))
    return deleted
