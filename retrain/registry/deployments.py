"""Which Azure deployments the registry's models need, and which can go.

A model on a provider of kind azure answers only through a deployment (``retrain.providers.
azure_deployments``). Before a model is evaluated or served it is deployed (``deployed``: a
candidate on RETRAIN_AZURE__CANDIDATE_SKU, production on __PRODUCTION_SKU) and its record names
the deployment. A rejected candidate's deployment is deleted (``undeploy``); after a night,
production's deployment is moved to the production SKU and only the deployments of the last
__KEEP_DEPLOYMENTS models production pointed to before are kept (``settle_deployments``), so
hosting charges stay bounded. Models on any other provider are left as they are.
"""

from __future__ import annotations

import logging

from retrain.config.settings import Settings
from retrain.providers.azure_deployments import AzureDeployments
from retrain.providers.clients import provider_named
from retrain.registry.aliases import PRODUCTION
from retrain.registry.records import ModelRecord
from retrain.registry.registry import Registry

__all__ = ["deployed", "on_azure", "settle_deployments", "undeploy"]

logger = logging.getLogger(__name__)


def on_azure(settings: Settings, record: ModelRecord) -> bool:
    return provider_named(settings, record.provider).kind == "azure"


def deployed(settings: Settings, record: ModelRecord, *, production: bool = False) -> ModelRecord:
    """The record with the deployment that serves it (created, or found, and ready); other providers'
    records unchanged."""
    if not on_azure(settings, record):
        return record
    sku = settings.azure.production_sku if production else settings.azure.candidate_sku
    name = AzureDeployments(settings.azure).deploy(record.model_id, sku=sku)
    logger.info("%s is deployed as %s (%s)", record.model_id, name, sku)
    return record.model_copy(update={"deployment": name})


def undeploy(settings: Settings, record: ModelRecord) -> str | None:
    """Delete a rejected candidate's deployment; its name, or None (none, or not on Azure)."""
    if not on_azure(settings, record) or not record.deployment:
        return None
    return record.deployment if AzureDeployments(settings.azure).delete(record.deployment) else None


def settle_deployments(settings: Settings, registry: Registry) -> list[str]:
    """Production's deployment on the production SKU; delete our deployments of any model other than
    production and the last ``keep_deployments`` models it replaced. The names deleted."""
    record = registry.get(PRODUCTION)
    if record is None or not on_azure(settings, record):
        return []
    deployments = AzureDeployments(settings.azure)
    deployments.deploy(record.model_id, sku=settings.azure.production_sku)
    earlier: list[str] = []
    for event in reversed(registry.history(PRODUCTION)):
        model = event.model.model_id
        if model != record.model_id and model not in earlier:
            earlier.append(model)
    kept = {record.model_id, *earlier[: settings.azure.keep_deployments]}
    deleted = [d.name for d in deployments.ours() if d.model_id not in kept and deployments.delete(d.name)]
    if deleted:
        logger.info(
            "deleted deployments %s (keeping production and %d earlier)", ", ".join(deleted), len(kept) - 1
        )
    return deleted
