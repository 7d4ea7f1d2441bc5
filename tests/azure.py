"""The local stack's Azure emulation, as tests point retrain at it: the Azure OpenAI resource whose
deployments the local server's management routes (``/azure-management``) keep."""

from __future__ import annotations

from retrain.config.services import AzureSettings

__all__ = ["azure_env", "local_azure"]

_RESOURCE = {"subscription_id": "sub-local", "resource_group": "rg-retrain", "account_name": "retrain-local"}


def local_azure(root_url: str) -> AzureSettings:
    return AzureSettings(
        **_RESOURCE, management_url=f"{root_url}/azure-management", poll_interval_seconds=0.05
    )


def azure_env(root_url: str) -> dict[str, str]:
    """RETRAIN_AZURE__* for the nightly flow."""
    settings = local_azure(root_url)
    return {
        f"RETRAIN_AZURE__{name.upper()}": str(getattr(settings, name))
        for name in (*_RESOURCE, "management_url", "poll_interval_seconds")
    }
