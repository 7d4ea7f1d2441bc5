"""What a task sets up, through one seam: the settings, the object store, the registry and a
provider with its credentials (and the training provider's client).

``task_context()`` is called once at the start of a task. Each call builds its clients afresh,
on the settings of the process (``get_settings``), as a task run did on its own before; within
one task each is built once, when first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from retrain.config.services import ProviderSettings
from retrain.config.settings import Settings, get_settings
from retrain.providers.clients import make_training_client, provider_named
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore
from retrain.train.job_api import TrainingClient
from tasks.credentials import provider_with_credentials

__all__ = ["TaskContext", "task_context"]


@dataclass(frozen=True)
class TaskContext:
    settings: Settings

    @cached_property
    def store(self) -> ObjectStore:
        return ObjectStore.from_settings(self.settings.s3)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.store)

    @cached_property
    def training_provider(self) -> ProviderSettings:
        """The provider that fine-tunes (``RETRAIN_PROVIDER__*``, or Together's with the together
        backend), with its credentials."""
        return provider_with_credentials(self.settings.training_provider())

    @cached_property
    def training_client(self) -> TrainingClient:
        """The client of its fine-tuning API: the openai SDK, or the together SDK for Together."""
        return make_training_client(self.training_provider)

    def provider(self, name: str) -> ProviderSettings:
        """The configured provider called ``name`` (as the registry records it), with its credentials;
        ConfigError if there is none or its Secret block is missing."""
        return provider_with_credentials(provider_named(self.settings, name))


def task_context() -> TaskContext:
    return TaskContext(get_settings())
