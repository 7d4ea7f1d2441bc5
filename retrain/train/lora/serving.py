"""Adapters on a vLLM-compatible serving endpoint: vLLM's runtime LoRA API
(``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``), which the local inference server also speaks.

``base_url`` is the endpoint's OpenAI base URL (``.../v1``): ``POST {base_url}/load_lora_adapter``
``{"lora_name", "lora_path"}`` and ``POST {base_url}/unload_lora_adapter`` ``{"lora_name"}``.
"""

from __future__ import annotations

import httpx

from retrain.config.settings import Settings
from retrain.exceptions import ProviderError, ProviderUnavailable
from retrain.providers.clients import provider_named
from retrain.registry.records import ModelRecord

__all__ = ["adapter_path", "load_adapter", "retire_record", "serve_record", "unload_adapter"]


def adapter_path(settings: Settings, record: ModelRecord) -> str:
    """What the serving endpoint is told to load for ``record``'s adapter (RETRAIN_LORA__ADAPTER_SOURCE)."""
    if settings.lora.adapter_source == "folder":
        return f"{settings.lora.served_adapter_dir.rstrip('/')}/{record.model_id}"
    return str(record.artifact)


def _endpoint(settings: Settings, record: ModelRecord) -> str:
    return str(provider_named(settings, record.provider).base_url)


def serve_record(settings: Settings, record: ModelRecord) -> bool | None:
    """Load ``record``'s adapter into the endpoint of its provider: None for a model without one
    (an API model, or a base model), else as ``load_adapter``."""
    if not record.artifact:
        return None
    return load_adapter(_endpoint(settings, record), record.model_id, adapter_path(settings, record))


def retire_record(settings: Settings, record: ModelRecord) -> bool | None:
    """Unload ``record``'s adapter from the endpoint of its provider: None for a model without one,
    else as ``unload_adapter``."""
    if not record.artifact:
        return None
    return unload_adapter(_endpoint(settings, record), record.model_id)


def _post(base_url: str, route: str, body: dict[str, str], timeout: float) -> httpx.Response:
    try:
        return httpx.post(f"{base_url.rstrip('/')}/{route}", json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(
            f"serving endpoint {base_url} unreachable ({type(exc).__name__}): start it or fix "
            "RETRAIN_LORA__SERVING_URL"
        ) from None


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") if isinstance(error, dict) else error)
    except ValueError:
        return response.text[:300]


def load_adapter(base_url: str, name: str, path: str, *, timeout: float = 300.0) -> bool:
    """Load the adapter at ``path`` as model ``name``: True, or False when it was loaded already."""
    response = _post(base_url, "load_lora_adapter", {"lora_name": name, "lora_path": path}, timeout)
    if response.status_code == 200:
        return True
    message = _message(response)
    if response.status_code == 400 and "has already been loaded" in message:
        return False
    raise ProviderError(
        f"serving endpoint {base_url} refused adapter {name!r} from {path} (HTTP {response.status_code}): "
        f"{message}"
    )


def unload_adapter(base_url: str, name: str, *, timeout: float = 60.0) -> bool:
    """Unload model ``name``: True, or False when it was not loaded."""
    response = _post(base_url, "unload_lora_adapter", {"lora_name": name}, timeout)
    if response.status_code == 200:
        return True
    if response.status_code == 404:
        return False
    raise ProviderError(
        f"serving endpoint {base_url} refused to unload {name!r} (HTTP {response.status_code}): "
        f"{_message(response)}"
    )
