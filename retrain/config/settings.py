"""All configuration, in one settings class.

Values come from ``RETRAIN_*`` environment variables and a ``.env`` file in the working
directory; nested groups use ``__`` (``RETRAIN_S3__BUCKET=my-bucket``). The groups are defined
in ``retrain.config.services`` (the bucket, the provider, the local stack) and
``retrain.config.stage_settings`` (each pipeline stage, and the orchestration).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from retrain.config.services import (
    AzureSettings,
    LocalStackSettings,
    ProviderSettings,
    S3Settings,
    local_together_url,
)
from retrain.config.setting_names import unknown_settings
from retrain.config.stage_settings import (
    DatasetSettings,
    EvaluationSettings,
    IngestSettings,
    LoraSettings,
    OrchestrationSettings,
    RetirementSettings,
    TogetherSettings,
    TrainingSettings,
    ValidationSettings,
)
from retrain.exceptions import ConfigError

__all__ = ["Settings", "get_settings", "load_settings", "overridden_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RETRAIN_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    s3: S3Settings = S3Settings()
    provider: ProviderSettings = ProviderSettings()
    providers: dict[str, ProviderSettings] = Field(
        default_factory=dict,
        description="More named providers, for models served elsewhere than `provider` "
        "(RETRAIN_PROVIDERS__<NAME>__KIND, __BASE_URL, ...; the name is the key unless __NAME is "
        "set); the registry names each model's provider.",
    )
    validation: ValidationSettings = ValidationSettings()
    ingest: IngestSettings = IngestSettings()
    dataset: DatasetSettings = DatasetSettings()
    training: TrainingSettings = TrainingSettings()
    lora: LoraSettings = LoraSettings()
    together: TogetherSettings = TogetherSettings()
    azure: AzureSettings = AzureSettings()
    retirement: RetirementSettings = RetirementSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    local: LocalStackSettings = LocalStackSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()

    @model_validator(mode="after")
    def _providers_named_by_their_key(self) -> Settings:
        for key, provider in self.providers.items():
            if "name" not in provider.model_fields_set:
                self.providers[key] = provider.model_copy(update={"name": key})
        return self

    @model_validator(mode="after")
    def _lora_models_have_a_provider(self) -> Settings:
        """With the lora backend, models are served by the vLLM-compatible endpoint in
        RETRAIN_LORA__SERVING_URL, under the provider name RETRAIN_LORA__SERVING_PROVIDER (unless
        RETRAIN_PROVIDERS__<that name>__* configures it otherwise)."""
        name = self.lora.serving_provider
        if self.training.backend == "lora" and name not in self.providers and name != self.provider.name:
            self.providers[name] = ProviderSettings(
                kind="compatible", name=name, base_url=self.lora.serving_url
            )
        return self

    @model_validator(mode="after")
    def _together_has_a_provider(self) -> Settings:
        """With the together backend, jobs and models go through the provider RETRAIN_TOGETHER__PROVIDER
        names (kind together); without one configured, the local stack's Together endpoint."""
        if self.training.backend != "together":
            return self
        name = self.together.provider
        configured = next((p for key, p in self.providers.items() if name in (key, p.name)), None)
        if configured is None:
            self.providers[name] = ProviderSettings(
                kind="together", name=name, base_url=local_together_url(self.local.openai_port)
            )
        elif configured.kind != "together":
            key = name.upper()
            raise ValueError(
                f"the together backend trains through provider {name!r}, whose kind is "
                f"{configured.kind!r}: set RETRAIN_PROVIDERS__{key}__KIND=together"
            )
        return self

    @model_validator(mode="after")
    def _azure_can_deploy(self) -> Settings:
        """A provider of kind azure serves a model only through a deployment, which retrain creates:
        it needs the resource the deployments belong to."""
        azure = [p.name for p in (self.provider, *self.providers.values()) if p.kind == "azure"]
        if azure and (missing := self.azure.missing()):
            raise ValueError(
                f"provider {azure[0]!r} is Azure OpenAI, where a model answers only once deployed: set "
                f"{', '.join(missing)} (the Azure OpenAI resource retrain deploys models to)"
            )
        return self

    def training_provider(self) -> ProviderSettings:
        """The provider that fine-tunes: RETRAIN_PROVIDER__*, or Together's with the together backend."""
        if self.training.backend == "together":
            return next(p for key, p in self.providers.items() if self.together.provider in (key, p.name))
        return self.provider


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        parts = [str(part).upper() for part in err["loc"] if part != "__root__"]
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"RETRAIN_{'__'.join(parts)}: {message}" if parts else message)
    return "invalid settings: " + "; ".join(problems)


def _misnamed_settings() -> list[str]:
    problems = unknown_settings(os.environ, Settings, "the environment")
    env_file = Path(str(Settings.model_config.get("env_file")))
    if env_file.is_file():
        problems += unknown_settings(dotenv_values(env_file), Settings, str(env_file))
    return problems


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and `.env`; raise ConfigError with one readable line.

    A ``RETRAIN_<GROUP>__...`` name that is not a setting is an error too (``setting_names``).
    """
    if problems := _misnamed_settings():
        raise ConfigError("; ".join(problems) + " (`retrain config-reference` lists every setting)")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


_OVERRIDES: dict[str, Any] = {}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (with the overrides of ``overridden_settings``)."""
    return load_settings(**_OVERRIDES)


@contextmanager
def overridden_settings(overrides: Mapping[str, Mapping[str, Any]]) -> Iterator[Settings]:
    """The process's settings with some values replaced while the block runs, e.g.
    ``{"training": {"backend": "together"}}`` (merged into the groups read from the environment):
    a migration night trains on another backend than the configuration names."""
    saved = dict(_OVERRIDES)
    _OVERRIDES.clear()
    _OVERRIDES.update({group: dict(values) for group, values in overrides.items()})
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        _OVERRIDES.clear()
        _OVERRIDES.update(saved)
        get_settings.cache_clear()
