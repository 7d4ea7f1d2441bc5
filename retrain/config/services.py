"""The services retrain talks to: the bucket, the provider, and the local stack that stands in for both.

The defaults run the embedded local stack: a local S3 server and the local OpenAI-compatible
server on 127.0.0.1, with no credentials and no internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

__all__ = [
    "AzureSettings",
    "LocalStackSettings",
    "ProviderSettings",
    "S3Settings",
    "is_local_url",
    "local_together_url",
]

LOCAL_S3_PORT = 9555
LOCAL_OPENAI_PORT = 8765
LOCAL_API_KEY = "sk-local-not-a-secret"


def local_together_url(port: int = LOCAL_OPENAI_PORT) -> str:
    """The local stack's Together endpoint (OpenAI-compatible root), served by the local OpenAI server."""
    return f"http://127.0.0.1:{port}/together/v1"


class S3Settings(BaseModel):
    """Where incoming examples land and where retrain keeps its state."""

    endpoint_url: str | None = Field(
        default=f"http://127.0.0.1:{LOCAL_S3_PORT}",
        description="S3 endpoint; empty for AWS itself. The default is the local object store.",
    )
    bucket: str = Field(
        default="retrain", min_length=3, max_length=63, description="The bucket retrain reads and writes."
    )
    prefix: str = Field(default="", description="Optional key prefix under which every folder lives.")
    region: str = Field(default="us-east-1", description="AWS region of the bucket.")
    access_key_id: SecretStr | None = Field(
        default=SecretStr("local"), description="Empty on AWS to use the default credential chain."
    )
    secret_access_key: SecretStr | None = Field(
        default=SecretStr("local"), description="Pairs with access_key_id."
    )

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value.rstrip("/")

    @field_validator("prefix")
    @classmethod
    def _prefix_is_folder(cls, value: str) -> str:
        value = value.strip("/")
        return f"{value}/" if value else ""


class ProviderSettings(BaseModel):
    """The OpenAI-compatible API that trains and serves models."""

    kind: Literal["openai", "azure", "compatible", "together"] = Field(
        default="compatible",
        description="openai, azure, compatible (any base_url, the local server included), or together "
        "(Together AI: base_url is its OpenAI-compatible root, https://api.together.xyz/v1, and jobs go "
        "through the together SDK at the root above it).",
    )
    name: str = Field(default="local", description="Recorded in the registry beside each model.")
    base_url: str | None = Field(
        default=f"http://127.0.0.1:{LOCAL_OPENAI_PORT}/v1",
        description="API root for kinds compatible and together.",
    )
    api_key: SecretStr = Field(default=SecretStr(LOCAL_API_KEY), description="Never logged.")
    api_key_secret_block: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block holding the API key; when set, flows and `retrain "
        "jobs`, `eval` and `chat` read the key from it instead of api_key.",
    )
    azure_endpoint: str | None = Field(
        default=None, description="https://NAME.openai.azure.com for kind azure."
    )
    azure_api_version: str = Field(default="2025-04-01-preview", description="api-version for kind azure.")
    max_retries: int = Field(default=4, ge=0, le=20, description="SDK retries on 429/5xx/timeouts.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Per-request timeout.")

    @model_validator(mode="after")
    def _complete_for_kind(self) -> ProviderSettings:
        if self.kind == "azure" and not self.azure_endpoint:
            raise ValueError("kind 'azure' needs azure_endpoint (RETRAIN_PROVIDER__AZURE_ENDPOINT)")
        if self.kind in ("compatible", "together") and not self.base_url:
            raise ValueError(f"kind {self.kind!r} needs base_url (RETRAIN_PROVIDER__BASE_URL)")
        placeholder = self.api_key.get_secret_value() in ("", LOCAL_API_KEY)
        remote_together = self.kind == "together" and not is_local_url(self.base_url or "")
        if (
            (self.kind in ("openai", "azure") or remote_together)
            and placeholder
            and not self.api_key_secret_block
        ):
            raise ValueError(
                f"kind {self.kind!r} needs a real API key in RETRAIN_PROVIDER__API_KEY or a Prefect "
                "Secret block named in RETRAIN_PROVIDER__API_KEY_SECRET_BLOCK "
                "(the local placeholder key only works with the local server)"
            )
        return self


class AzureSettings(BaseModel):
    """The Azure OpenAI resource whose deployments serve the models of a provider of kind azure.

    On Azure a fine-tuned model answers only once deployed, and a deployment is billed by the hour
    while it exists: retrain deploys each model it evaluates there, deletes a rejected candidate's
    deployment and keeps at most ``keep_deployments`` deployments of models other than production.
    Credentials come from azure-identity's DefaultAzureCredential (environment, managed identity,
    ``az login``).
    """

    subscription_id: str | None = Field(default=None, description="The subscription of the resource.")
    resource_group: str | None = Field(default=None, description="Its resource group.")
    account_name: str | None = Field(default=None, description="The Azure OpenAI resource's name.")
    management_url: str = Field(
        default="https://management.azure.com",
        description="Azure Resource Manager's endpoint (a local URL: the local stack's emulation).",
    )
    candidate_sku: str = Field(
        default="DeveloperTier",
        description="Deployment type of a candidate under evaluation (Developer: Azure's tier for "
        "evaluating fine-tuned models, without an hourly hosting charge).",
    )
    production_sku: str = Field(
        default="Standard", description="Deployment type a promoted model's deployment is moved to."
    )
    capacity: int = Field(
        default=1, ge=1, description="Deployment capacity (units of 1,000 tokens a minute)."
    )
    keep_deployments: int = Field(
        default=2,
        ge=0,
        description="Deployments of models other than production kept; older ones are deleted.",
    )
    deploy_timeout_seconds: float = Field(
        default=1800.0, gt=0, description="How long to wait for a deployment to succeed."
    )
    poll_interval_seconds: float = Field(default=15.0, gt=0, description="Between deployment status reads.")

    def missing(self) -> list[str]:
        """The settings a deployment needs that are not set."""
        return [
            f"RETRAIN_AZURE__{name.upper()}"
            for name in ("subscription_id", "resource_group", "account_name")
            if not getattr(self, name)
        ]


def is_local_url(url: str) -> bool:
    """Whether a URL points at this machine (the local stack), where no real key is needed."""
    host = urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


class LocalStackSettings(BaseModel):
    """The embedded local stack (`retrain local up`)."""

    data_dir: Path = Field(
        default=Path(".retrain"), description="State, logs and pid files of the local stack."
    )
    host: str = Field(default="127.0.0.1", description="Address the local servers listen on.")
    s3_port: int = Field(default=LOCAL_S3_PORT, ge=1, le=65535, description="Local S3 server port.")
    openai_port: int = Field(
        default=LOCAL_OPENAI_PORT, ge=1, le=65535, description="Local OpenAI server port."
    )
    prefect_port: int = Field(default=4200, ge=1, le=65535, description="Local Prefect server port.")
    inference_port: int = Field(
        default=8766,
        ge=1,
        le=65535,
        description="Local inference server port (started when the training extra is installed).",
    )
    openai_step_delay: float = Field(
        default=0.01, ge=0, description="Seconds per training step of the local OpenAI server's jobs."
    )
