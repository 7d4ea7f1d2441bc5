"""Azure's management API for Azure OpenAI deployments, as ``azure-mgmt-cognitiveservices`` calls it,
under ``/azure-management``; and the data plane's rules on the ``/openai`` paths.

Deployments live at ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/
accounts/{account}/deployments/{name}?api-version=...``: PUT creates or updates one (201 while it is
``Creating``; the SDK's ARM poller reads the resource until ``provisioningState`` is ``Succeeded``,
after ``DEPLOY_SECONDS``), GET reads, DELETE deletes, and the collection lists them. Only a model
this server knows (a base model or one it trained) can be deployed.

The account's model list (``.../accounts/{account}/models``, ``accounts.list_models`` in the SDK)
gives each OpenAI base model this server knows with its ``deprecation`` dates (``fineTune``: no
new fine-tuning jobs; ``inference``: it stops answering), as Azure publishes them per model. The
dates here are made up (three years after the model's release) unless an operator sets them with
``POST /admin/azure/deprecations`` (``{model: {"fineTune": ..., "inference": ...}}``).

On ``/openai`` (Azure clients), as on real Azure, every request needs ``api-version`` and chat
answers only through a deployment that exists and is ready (``require_deployment``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, Response

from local_openai.errors import ApiError
from local_openai.state import BASE_MODELS, TOGETHER_BASE_MODELS, ServerState, StateDep
from local_openai.store import Document

__all__ = ["DEPLOY_SECONDS", "admin_router", "api_version_error", "require_deployment", "router"]

router = APIRouter()
admin_router = APIRouter()

DEPLOY_SECONDS = 0.3
KIND = "azure_deployment"
_PATH = (
    "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.CognitiveServices"
    "/accounts/{account}/deployments"
)
ApiVersion = Annotated[str | None, Query(alias="api-version")]
DEPRECATION_KIND = "azure_model_deprecation"
_THREE_YEARS = 3 * 365 * 24 * 3600
_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d{4}-\d{2}-\d{2}|\d{4})$")


def _arm_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def api_version_error() -> JSONResponse:
    return _arm_error(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )


def _key(subscription: str, group: str, account: str, name: str) -> str:
    return f"{subscription}/{group.lower()}/{account.lower()}/{name}"


def _view(doc: Document) -> dict[str, Any]:
    ready = time.time() >= doc["_ready_at"]
    return {
        "id": doc["_resource_id"],
        "name": doc["name"],
        "type": "Microsoft.CognitiveServices/accounts/deployments",
        "sku": doc["sku"],
        "properties": {
            "model": doc["model"],
            "provisioningState": "Succeeded" if ready else "Creating",
        },
    }


@router.put(_PATH + "/{name}")
def put_deployment(
    state: StateDep,
    subscription: str,
    group: str,
    account: str,
    name: str,
    body: Annotated[dict[str, Any], Body()],
    api_version: ApiVersion = None,
) -> Response:
    if not api_version:
        return api_version_error()
    model = (body.get("properties") or {}).get("model") or {}
    model_name = str(model.get("name") or "")
    if model_name not in BASE_MODELS and state.store.get("model", model_name) is None:
        return _arm_error(
            400,
            "DeploymentModelNotSupported",
            f"The model '{model_name}' is not supported for deployment in this account (local server).",
        )
    sku = body.get("sku") or {}
    if not sku.get("name"):
        return _arm_error(400, "InvalidResourceProperties", "The deployment needs a sku with a name.")
    key = _key(subscription, group, account, name)
    existing = state.store.get(KIND, key)
    doc: Document = {
        "id": key,
        "name": name,
        "sku": {"name": sku["name"], "capacity": int(sku.get("capacity") or 1)},
        "model": {
            "format": model.get("format", "OpenAI"),
            "name": model_name,
            "version": model.get("version", "1"),
        },
        "_resource_id": f"{_PATH.format(subscription=subscription, group=group, account=account)}/{name}",
        "_ready_at": time.time() + DEPLOY_SECONDS,
    }
    if existing is not None:
        if existing["model"]["name"] != model_name:
            return _arm_error(
                409, "Conflict", f"Deployment '{name}' serves another model ({existing['model']['name']})."
            )
        doc["_ready_at"] = existing["_ready_at"] if existing["sku"] == doc["sku"] else doc["_ready_at"]
        state.store.update(KIND, key, lambda _: doc)
        return JSONResponse(_view(doc), status_code=200)
    state.store.insert(KIND, doc)
    return JSONResponse(_view(doc), status_code=201)


@router.get(_PATH + "/{name}")
def get_deployment(
    state: StateDep, subscription: str, group: str, account: str, name: str, api_version: ApiVersion = None
) -> Response:
    if not api_version:
        return api_version_error()
    doc = state.store.get(KIND, _key(subscription, group, account, name))
    if doc is None:
        return _arm_error(404, "DeploymentNotFound", f"Deployment '{name}' not found.")
    return JSONResponse(_view(doc))


@router.delete(_PATH + "/{name}")
def delete_deployment(
    state: StateDep, subscription: str, group: str, account: str, name: str, api_version: ApiVersion = None
) -> Response:
    if not api_version:
        return api_version_error()
    deleted = state.store.delete(KIND, _key(subscription, group, account, name))
    return Response(status_code=200 if deleted else 204)


@router.get(_PATH)
def list_deployments(
    state: StateDep, subscription: str, group: str, account: str, api_version: ApiVersion = None
) -> Response:
    if not api_version:
        return api_version_error()
    prefix = _key(subscription, group, account, "")
    return JSONResponse({"value": [_view(d) for d in state.store.list(KIND) if d["id"].startswith(prefix)]})


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _account_model(state: ServerState, model: str, released: int) -> dict[str, Any]:
    match = _VERSION.match(model)
    name, version = (match["name"], match["version"]) if match else (model, "1")
    default = {"fineTune": _iso(released + _THREE_YEARS), "inference": _iso(released + _THREE_YEARS)}
    override = state.store.get(DEPRECATION_KIND, model) or {}
    return {
        "format": "OpenAI",
        "name": name,
        "version": version,
        "isDefaultVersion": True,
        "capabilities": {"chatCompletion": "true", "fineTune": "true"},
        "deprecation": {**default, **{k: v for k, v in override.items() if k in default}},
        "lifecycleStatus": "GenerallyAvailable",
    }


@router.get(_PATH.removesuffix("/deployments") + "/models")
def list_account_models(
    state: StateDep, subscription: str, group: str, account: str, api_version: ApiVersion = None
) -> Response:
    if not api_version:
        return api_version_error()
    models = [
        _account_model(state, model, released)
        for model, released in BASE_MODELS.items()
        if model not in TOGETHER_BASE_MODELS
    ]
    return JSONResponse({"value": models})


@admin_router.post("/admin/azure/deprecations")
def set_deprecations(state: StateDep, body: Annotated[dict[str, dict[str, str]], Body()]) -> dict[str, Any]:
    """Set base models' deprecation dates (ISO datetimes) in the account's model list."""
    for model, dates in body.items():
        state.store.delete(DEPRECATION_KIND, model)
        state.store.insert(DEPRECATION_KIND, {"id": model, **dates})
    return {"deprecations": {doc["id"]: doc for doc in state.store.list(DEPRECATION_KIND)}}


def require_deployment(state: ServerState, name: str) -> str:
    """The model a ready deployment called ``name`` serves; Azure's 404 otherwise."""
    for doc in state.store.list(KIND):
        if doc["name"] == name and time.time() >= doc["_ready_at"]:
            return str(doc["model"]["name"])
    raise ApiError(
        404,
        "The API deployment for this resource does not exist. If you created the deployment within the "
        "last 5 minutes, please wait a moment and try again.",
        code="DeploymentNotFound",
    )
