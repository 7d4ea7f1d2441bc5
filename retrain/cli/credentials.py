"""API keys kept in a Prefect Secret block, for the commands that call a provider themselves.

Flows read the block in their tasks (``tasks.credentials.provider_with_credentials``); `retrain
jobs`, `retrain eval` and `retrain chat` run outside a flow and read it here, the same way.
"""

from __future__ import annotations

from retrain.cli.prefect_api import require_prefect_api
from retrain.config.services import ProviderSettings

__all__ = ["with_credentials"]


def with_credentials(provider: ProviderSettings) -> ProviderSettings:
    """The provider with its API key read from its Secret block, if it names one."""
    if not provider.api_key_secret_block:
        return provider
    require_prefect_api()
    from tasks.credentials import provider_with_credentials

    return provider_with_credentials(provider)
