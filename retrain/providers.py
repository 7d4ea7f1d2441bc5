"""OpenAI-compatible clients built from configuration: openai, azure or any base_url.

A provider is configuration, not a code path: every caller asks this module for a client
and uses the same ``openai`` SDK calls whichever service is behind it.
"""

from __future__ import annotations

from openai import AsyncAzureOpenAI, AsyncOpenAI, AzureOpenAI, OpenAI

from retrain.settings import ProviderSettings

__all__ = ["make_async_client", "make_client"]


def make_client(settings: ProviderSettings, *, max_retries: int | None = None) -> OpenAI:
    """A synchronous client for the configured provider."""
    retries = settings.max_retries if max_retries is None else max_retries
    key = settings.api_key.get_secret_value()
    if settings.kind == "azure":
        return AzureOpenAI(
            api_key=key,
            azure_endpoint=str(settings.azure_endpoint),
            api_version=settings.azure_api_version,
            max_retries=retries,
            timeout=settings.timeout_seconds,
        )
    return OpenAI(
        api_key=key,
        base_url=settings.base_url if settings.kind == "compatible" else None,
        max_retries=retries,
        timeout=settings.timeout_seconds,
    )


def make_async_client(settings: ProviderSettings, *, max_retries: int | None = None) -> AsyncOpenAI:
    """An asyncio client for the configured provider (evaluation fans out with it)."""
    retries = settings.max_retries if max_retries is None else max_retries
    key = settings.api_key.get_secret_value()
    if settings.kind == "azure":
        return AsyncAzureOpenAI(
            api_key=key,
            azure_endpoint=str(settings.azure_endpoint),
            api_version=settings.azure_api_version,
            max_retries=retries,
            timeout=settings.timeout_seconds,
        )
    return AsyncOpenAI(
        api_key=key,
        base_url=settings.base_url if settings.kind == "compatible" else None,
        max_retries=retries,
        timeout=settings.timeout_seconds,
    )
