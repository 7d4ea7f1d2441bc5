"""Asking the model behind an alias, the way an application does.

``ask("How do I reset my password?")`` resolves ``production`` through the cached
resolver (one S3 read per TTL), picks the provider the registry recorded for that model,
and sends one chat completion.
"""

from __future__ import annotations

import logging
from typing import Any

from retrain.config.services import ProviderSettings
from retrain.config.settings import Settings, get_settings
from retrain.evaluate.request_params import token_limit_field
from retrain.exceptions import ProviderError
from retrain.providers.clients import api_errors, make_client, provider_named
from retrain.registry.resolver import resolve_record

__all__ = ["Answer", "ask", "ask_model"]

logger = logging.getLogger(__name__)


class Answer(str):
    """The model's reply; ``model`` and ``provider`` say who answered."""

    model: str
    provider: str

    def __new__(cls, text: str, *, model: str, provider: str) -> Answer:
        answer = super().__new__(cls, text)
        answer.model = model
        answer.provider = provider
        return answer


def ask(
    question: str,
    alias: str = "production",
    *,
    system: str | None = None,
    max_tokens: int | None = None,
    settings: Settings | None = None,
) -> Answer:
    """The answer of the model the alias points to (UnknownAlias if it points nowhere)."""
    settings = settings or get_settings()
    record = resolve_record(alias, settings)
    return ask_model(
        question,
        record.model_id,
        provider_named(settings, record.provider),
        system=system,
        max_tokens=max_tokens,
        settings=settings,
    )


def ask_model(
    question: str,
    model_id: str,
    provider: ProviderSettings,
    *,
    system: str | None = None,
    max_tokens: int | None = None,
    settings: Settings | None = None,
) -> Answer:
    """One chat completion from a model of a provider (``settings`` give the default max_tokens)."""
    settings = settings or get_settings()
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    # OpenAI's reasoning models (o-series, gpt-5) refuse max_tokens: the eval runner's choice of field.
    limit: dict[str, Any] = {
        token_limit_field(model_id, settings.evaluation): max_tokens or settings.evaluation.max_tokens
    }
    client = make_client(provider)
    with api_errors(f"asking {model_id}", provider):
        response = client.chat.completions.create(
            model=model_id,
            messages=messages,  # type: ignore[arg-type]
            **limit,
        )
    if not response.choices or response.choices[0].message.content is None:
        raise ProviderError(f"model {model_id} of provider {provider.name!r} returned no answer: try again")
    logger.info(
        "asked %s (%s): %d characters back", model_id, provider.name, len(response.choices[0].message.content)
    )
    return Answer(response.choices[0].message.content, model=model_id, provider=provider.name)
