"""A provider's API key from the Prefect Secret block its settings name, read when a task needs it."""

from __future__ import annotations

from typing import Any, cast

from retrain.config.services import ProviderSettings
from retrain.exceptions import ConfigError
from retrain.providers.clients import with_api_key

__all__ = ["provider_with_credentials"]


def provider_with_credentials(provider: ProviderSettings) -> ProviderSettings:
    """The provider with its API key from the Prefect Secret block named in its settings, if any."""
    if not provider.api_key_secret_block:
        return provider
    from prefect.blocks.system import Secret

    name = provider.api_key_secret_block
    try:
        secret = cast("Secret[Any]", Secret.load(name))
    except ValueError:
        raise ConfigError(
            f"provider {provider.name!r}: Prefect Secret block {name!r} not found: create it "
            f"(Secret(value=...).save({name!r})) or unset RETRAIN_PROVIDER__API_KEY_SECRET_BLOCK "
            "(RETRAIN_PROVIDERS__<KEY>__API_KEY_SECRET_BLOCK for a further provider)"
        ) from None
    return with_api_key(provider, str(secret.get()))
