"""Providers: OpenAI-compatible clients (openai, azure, or any base_url, the local server
included) built from configuration, with the provider's errors turned into retrain's own, create
calls that are never resent blindly, and the named providers the registry's models live on.
"""

from retrain.providers.clients import (
    OPENAI_NO_NEW_JOBS_FROM,
    api_errors,
    api_key_source,
    create_once,
    error_detail,
    is_quota_error,
    job_refused_hint,
    make_async_client,
    make_client,
    provider_named,
    require_model,
    wind_down_notice,
    with_api_key,
)

__all__ = [
    "OPENAI_NO_NEW_JOBS_FROM",
    "api_errors",
    "api_key_source",
    "create_once",
    "error_detail",
    "is_quota_error",
    "job_refused_hint",
    "make_async_client",
    "make_client",
    "provider_named",
    "require_model",
    "wind_down_notice",
    "with_api_key",
]
