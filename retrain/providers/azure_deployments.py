"""Azure OpenAI deployments through Azure's management API (``azure-mgmt-cognitiveservices``).

On Azure a model (base or fine-tuned) answers only through a deployment of it, an ARM resource of
the Azure OpenAI account, billed per hour while it exists. retrain names the deployment of a model
after the model (``deployment_name``), so deploying is idempotent: a re-run finds the deployment it
made. ``deploy`` creates or updates one and waits until it serves; ``delete`` removes one; ``ours``
lists the deployments retrain made (their names start with ``rt-``). ``model_retirements`` reads
the account's model list for the dates Azure retires each base model (``deprecation``).

Credentials: azure-identity's DefaultAzureCredential; against the local stack's emulation
(``RETRAIN_AZURE__MANAGEMENT_URL`` on this machine) a fixed local token over plain HTTP.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties, Sku

from retrain.config.services import AzureSettings, is_local_url
from retrain.exceptions import ConfigError, ProviderError, ProviderUnavailable

__all__ = [
    "DEPLOYMENT_PREFIX",
    "AzureDeployments",
    "ModelRetirement",
    "OurDeployment",
    "deployment_name",
]

DEPLOYMENT_PREFIX = "rt-"
_MAX_NAME = 64


def deployment_name(model_id: str) -> str:
    """The deployment retrain makes for ``model_id``: ``rt-`` + the model id in the characters a
    deployment name allows, shortened (with a hash of the whole id) to Azure's 64."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_id).strip("-.")
    name = f"{DEPLOYMENT_PREFIX}{safe}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:8]
    return f"{DEPLOYMENT_PREFIX}{safe[-(_MAX_NAME - len(DEPLOYMENT_PREFIX) - 9) :]}-{digest}".replace(
        "--", "-"
    )


@dataclass(frozen=True)
class OurDeployment:
    name: str
    model_id: str
    sku: str


@dataclass(frozen=True)
class ModelRetirement:
    """When Azure stops a base model: ``fine_tune``, new fine-tuning jobs; ``inference``, answering."""

    fine_tune: date | None
    inference: date | None


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None


class _LocalToken(TokenCredential):
    """The local stack's emulation accepts any bearer token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("local-azure-token", int(time.time()) + 3600)


class AzureDeployments:
    """The deployments of one Azure OpenAI account."""

    def __init__(self, settings: AzureSettings) -> None:
        if missing := settings.missing():
            raise ConfigError(f"Azure deployments need {', '.join(missing)}")
        self.settings = settings
        self._local = is_local_url(settings.management_url)
        credential: TokenCredential
        if self._local:
            credential = _LocalToken()
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self._client = CognitiveServicesManagementClient(
            credential, str(settings.subscription_id), base_url=settings.management_url.rstrip("/")
        )
        self._group, self._account = str(settings.resource_group), str(settings.account_name)

    def _options(self) -> dict[str, Any]:
        return {"enforce_https": False} if self._local else {}

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        where = f"Azure OpenAI resource {self._account!r} (resource group {self._group!r})"
        try:
            yield
        except ClientAuthenticationError as exc:
            raise ProviderError(
                f"{what}: Azure refused the credentials for {where} ({exc.message}): sign in "
                "(`az login`) or set AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET"
            ) from None
        except HttpResponseError as exc:
            code = exc.error.code if exc.error else exc.status_code
            raise ProviderError(f"{what} on {where}: {code}: {exc.message}") from None
        except AzureError as exc:
            raise ProviderUnavailable(
                f"{what}: cannot reach Azure Resource Manager at {self.settings.management_url} "
                f"({type(exc).__name__}): check RETRAIN_AZURE__MANAGEMENT_URL"
            ) from None

    def deploy(self, model_id: str, *, sku: str) -> str:
        """Create (or move to ``sku``) the deployment of ``model_id`` and wait until it serves; its name."""
        name = deployment_name(model_id)
        body = Deployment(
            sku=Sku(name=sku, capacity=self.settings.capacity),
            properties=DeploymentProperties(
                model=DeploymentModel(format="OpenAI", name=model_id, version="1")
            ),
        )
        with self._errors(f"deploying {model_id} as {name}"):
            poller = self._client.deployments.begin_create_or_update(
                self._group,
                self._account,
                name,
                body,
                polling_interval=self.settings.poll_interval_seconds,
                **self._options(),
            )
            deployed = poller.result(timeout=self.settings.deploy_timeout_seconds)
        state = deployed.properties.provisioning_state if deployed.properties else None
        if state != "Succeeded":
            raise ProviderError(
                f"deployment {name} of {model_id} is {state or 'not ready'} after "
                f"{self.settings.deploy_timeout_seconds:g} s (RETRAIN_AZURE__DEPLOY_TIMEOUT_SECONDS); "
                "the next run waits for it again"
            )
        return name

    def delete(self, name: str) -> bool:
        """Delete a deployment; False if there was none."""
        with self._errors(f"deleting deployment {name}"):
            try:
                self._client.deployments.get(self._group, self._account, name, **self._options())
            except ResourceNotFoundError:
                return False
            self._client.deployments.begin_delete(
                self._group,
                self._account,
                name,
                polling_interval=self.settings.poll_interval_seconds,
                **self._options(),
            ).result(timeout=self.settings.deploy_timeout_seconds)
        return True

    def ours(self) -> list[OurDeployment]:
        """The deployments retrain made in the account."""
        with self._errors("listing deployments"):
            listed = list(self._client.deployments.list(self._group, self._account, **self._options()))
        return [
            OurDeployment(
                name=str(d.name),
                model_id=str(d.properties.model.name) if d.properties and d.properties.model else "",
                sku=str(d.sku.name) if d.sku else "",
            )
            for d in listed
            if str(d.name).startswith(DEPLOYMENT_PREFIX)
        ]

    def model_retirements(self) -> dict[str, ModelRetirement]:
        """The account's base models (``name-version``, as fine-tuning names them, and ``name``, for
        the default version) and when Azure retires each, from their ``deprecation`` dates."""
        with self._errors("listing the account's models"):
            listed = list(self._client.accounts.list_models(self._group, self._account, **self._options()))
        dates: dict[str, ModelRetirement] = {}
        for model in listed:
            if not model.name or model.deprecation is None:
                continue
            retiring = ModelRetirement(_day(model.deprecation.fine_tune), _day(model.deprecation.inference))
            if model.version:
                dates[f"{model.name}-{model.version}"] = retiring
            if model.is_default_version or model.name not in dates:
                dates[model.name] = retiring
        return dates
