"""The models an eval run asks: a label, a model id and the provider that serves it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from retrain.config.services import ProviderSettings
from retrain.config.settings import Settings
from retrain.providers.clients import provider_named
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore

__all__ = ["ModelTarget", "resolve_target"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelTarget:
    label: str
    model_id: str
    provider: ProviderSettings
    deployment: str | None = None

    @property
    def served_as(self) -> str:
        """The name its chat requests use: the Azure deployment that serves it, else its model id."""
        return self.deployment or self.model_id


def resolve_target(store: ObjectStore, name: str, label: str, settings: Settings) -> ModelTarget:
    """A registry alias becomes the model it points to (on its provider); any other name is a model id."""
    record = Registry(store).get(name)
    if record is None:
        return ModelTarget(label=label, model_id=name, provider=settings.provider)
    logger.info("alias %s resolves to %s (provider %s)", name, record.model_id, record.provider)
    return ModelTarget(
        label=label,
        model_id=record.model_id,
        provider=provider_named(settings, record.provider),
        deployment=record.deployment,
    )
