"""Retirement awareness: production's base model, or the backend that trains it, is about to stop.

A fine-tuned model serves only until its base model retires, and OpenAI's own API takes no new
fine-tuning jobs from 2027-01-06. ``PUBLISHED`` holds the dates providers have published that
retrain knows (each with its source); RETRAIN_RETIREMENT__CALENDAR adds a team's own, or overrides
one. Where production is served by Azure OpenAI, Azure's own dates for its base models come in
between the two (the account's model list, ``AzureDeployments.model_retirements``); where Azure
trains, its date for no more fine-tuning of the base model is a backend notice.
``retirement_notices`` says, for production's record and the training provider, what stops
within RETRAIN_RETIREMENT__WARN_DAYS, naming `retrain migrate`. `retrain check`, `retrain alias
show` and each night show the notices; the night also sends the Prefect event
``retrain.retirement.near``, on which an automation alerts (deployments/automations.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from retrain.config.services import ProviderSettings
from retrain.config.settings import Settings
from retrain.config.stage_settings import RetirementSettings
from retrain.exceptions import ConfigError, ProviderError
from retrain.providers.azure_deployments import AzureDeployments, ModelRetirement
from retrain.providers.clients import OPENAI_NO_NEW_JOBS_FROM, provider_named
from retrain.registry.records import ModelRecord

__all__ = [
    "PUBLISHED",
    "RetirementNotice",
    "Retiring",
    "notices_for",
    "retirement_notices",
    "retirement_of",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retiring:
    """A day something stops, and who said so."""

    on: date
    source: str


_OPENAI_DEPRECATIONS = "OpenAI API deprecations, 2026-04-22: legacy GPT model snapshots"
PUBLISHED: dict[str, Retiring] = {
    # Base models retrain fine-tunes that OpenAI has published a shutdown date for.
    "gpt-3.5-turbo-0125": Retiring(date(2026, 10, 23), _OPENAI_DEPRECATIONS),
    "gpt-4-0613": Retiring(date(2026, 10, 23), _OPENAI_DEPRECATIONS),
}
_JOBS_STOP = Retiring(OPENAI_NO_NEW_JOBS_FROM, "OpenAI API deprecations, 2026-05-07: self-serve fine-tuning")
_AZURE = "Azure OpenAI's model list (deprecation.{})"


@dataclass(frozen=True)
class RetirementNotice:
    """One thing that stops soon (or has stopped): what, when, and what to do."""

    kind: str  # "base_model" (production's) or "backend" (the training provider)
    name: str  # the base model, or the provider's name
    subject: str
    on: date
    days_left: int
    source: str
    what_to_do: str

    @property
    def line(self) -> str:
        when = (
            f"on {self.on} ({self.days_left} day{'s' if self.days_left != 1 else ''} from now)"
            if self.days_left >= 0
            else f"since {self.on}"
        )
        return f"{self.subject} stops {when} ({self.source}): {self.what_to_do}"


def retirement_of(
    base_model: str, settings: RetirementSettings, provider_dates: Mapping[str, Retiring] | None = None
) -> Retiring | None:
    """When a base model retires: the team's calendar first, then the serving provider's own dates
    (``provider_dates``), then the published dates."""
    if base_model in settings.calendar:
        return Retiring(settings.calendar[base_model], "RETRAIN_RETIREMENT__CALENDAR")
    if provider_dates and base_model in provider_dates:
        return provider_dates[base_model]
    return PUBLISHED.get(base_model)


def retirement_notices(
    production: ModelRecord | None,
    training_provider: ProviderSettings,
    backend: str,
    settings: RetirementSettings,
    today: date,
    *,
    serving: Mapping[str, Retiring] | None = None,
    training_stop: Retiring | None = None,
) -> list[RetirementNotice]:
    """What stops within ``settings.warn_days``: production's base model, and the training backend.

    ``serving``: the dates production's provider gives for its base models; ``training_stop``: the
    day the training provider stops fine-tuning the configured base model, where it says one.
    """
    notices = []
    if production is not None and (retiring := retirement_of(production.base_model, settings, serving)):
        notices.append(
            RetirementNotice(
                "base_model",
                production.base_model,
                f"production's base model {production.base_model} (of {production.model_id})",
                retiring.on,
                (retiring.on - today).days,
                retiring.source,
                "production stops answering then; move it with `retrain migrate --to BACKEND` "
                "(together, lora or openai_api with another base model) before",
            )
        )
    if backend == "openai_api" and training_provider.kind == "openai":
        notices.append(
            RetirementNotice(
                "backend",
                training_provider.name,
                f"training provider {training_provider.name!r} (OpenAI's fine-tuning API)",
                _JOBS_STOP.on,
                (_JOBS_STOP.on - today).days,
                _JOBS_STOP.source,
                "it takes no new fine-tuning jobs then; move training with `retrain migrate --to together` "
                "(or lora), or set RETRAIN_PROVIDER__KIND=azure",
            )
        )
    if training_stop is not None:
        notices.append(
            RetirementNotice(
                "backend",
                training_provider.name,
                f"training provider {training_provider.name!r} (fine-tuning its base model)",
                training_stop.on,
                (training_stop.on - today).days,
                training_stop.source,
                "it takes no new fine-tuning jobs for that model then; train a newer base model "
                "(RETRAIN_TRAINING__BASE_MODEL) or move with `retrain migrate --to together` (or lora)",
            )
        )
    return [notice for notice in notices if notice.days_left <= settings.warn_days]


def _kind_of(settings: Settings, name: str) -> str | None:
    try:
        return provider_named(settings, name).kind
    except ConfigError:
        return None


def _azure_retirements(settings: Settings) -> dict[str, ModelRetirement]:
    """Azure's dates for the account's base models; none (logged) where they cannot be read."""
    if settings.azure.missing():
        return {}
    try:
        return AzureDeployments(settings.azure).model_retirements()
    except (ConfigError, ProviderError) as exc:
        logger.warning("no retirement dates from Azure OpenAI: %s", exc)
        return {}


def notices_for(settings: Settings, production: ModelRecord | None, today: date) -> list[RetirementNotice]:
    """``retirement_notices`` for the configured training backend and calendar, with Azure's own
    dates where Azure serves production or trains."""
    training = settings.training_provider()
    serves = production is not None and _kind_of(settings, production.provider) == "azure"
    trains = training.kind == "azure" and settings.training.backend == "openai_api"
    azure = _azure_retirements(settings) if serves or trains else {}
    serving = (
        {
            model: Retiring(dates.inference, _AZURE.format("inference"))
            for model, dates in azure.items()
            if dates.inference is not None
        }
        if serves
        else None
    )
    stop = azure.get(settings.training.base_model) if trains else None
    training_stop = Retiring(stop.fine_tune, _AZURE.format("fineTune")) if stop and stop.fine_tune else None
    return retirement_notices(
        production,
        training,
        settings.training.backend,
        settings.retirement,
        today,
        serving=serving,
        training_stop=training_stop,
    )
