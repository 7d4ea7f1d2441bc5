"""OpenAI-compatible clients built from configuration: openai, azure or any base_url.

A provider is configuration, not a code path: every caller asks this module for a client
and uses the same ``openai`` SDK calls whichever service is behind it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, TypeVar

import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI, AzureOpenAI, OpenAI
from pydantic import SecretStr

from retrain.config.redact import redact
from retrain.config.services import ProviderSettings
from retrain.config.settings import Settings
from retrain.exceptions import (
    ConfigError,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    UnknownModel,
)

T = TypeVar("T")

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

# OpenAI is winding down self-serve fine-tuning: no new jobs for organisations created since
# May 2026, and none for anyone from this day on. Azure OpenAI and other providers are unaffected.
OPENAI_NO_NEW_JOBS_FROM = date(2027, 1, 6)
_NO_NEW_JOBS_DAY = f"{OPENAI_NO_NEW_JOBS_FROM.day} {OPENAI_NO_NEW_JOBS_FROM:%B %Y}"
_MOVE_TRAINING = (
    "move training to another OpenAI-compatible provider (README, 'Move training to another provider')"
)


def _options(settings: ProviderSettings, max_retries: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "api_key": settings.api_key.get_secret_value(),
        "max_retries": settings.max_retries if max_retries is None else max_retries,
        "timeout": settings.timeout_seconds,
    }
    if settings.kind == "azure":
        options |= {"azure_endpoint": str(settings.azure_endpoint), "api_version": settings.azure_api_version}
    else:
        options["base_url"] = settings.base_url if settings.kind == "compatible" else None
    return options


def with_api_key(settings: ProviderSettings, api_key: str) -> ProviderSettings:
    """The same provider with a key read elsewhere (a Prefect Secret block, by the task layer)."""
    if not api_key.strip():
        raise ConfigError(f"provider {settings.name!r}: the API key read from its secret is empty")
    return settings.model_copy(update={"api_key": SecretStr(api_key.strip())})


def make_client(settings: ProviderSettings, *, max_retries: int | None = None) -> OpenAI:
    """A synchronous client for the configured provider."""
    options = _options(settings, max_retries)
    return AzureOpenAI(**options) if settings.kind == "azure" else OpenAI(**options)


def make_async_client(settings: ProviderSettings, *, max_retries: int | None = None) -> AsyncOpenAI:
    """An asyncio client for the configured provider (evaluation fans out with it)."""
    options = _options(settings, max_retries)
    return AsyncAzureOpenAI(**options) if settings.kind == "azure" else AsyncOpenAI(**options)


_QUOTA_CODES = {
    "insufficient_quota",
    "quota_exceeded",
    "daily_limit_exceeded",
    "daily_rate_limit_exceeded",
    "concurrent_jobs_limit",
}
_LIMIT_MESSAGE = re.compile(
    r"fine-tun\w* requests per day|maximum of \d+ active|concurrent (fine-tuning )?jobs"
    r"|exceeded your current quota",
    re.IGNORECASE,
)


def wind_down_notice(settings: ProviderSettings, today: date) -> str | None:
    """A warning for a night that trains on OpenAI's own API, which stops taking new jobs."""
    if settings.kind != "openai":
        return None
    if today < OPENAI_NO_NEW_JOBS_FROM:
        days = (OPENAI_NO_NEW_JOBS_FROM - today).days
        left = f"{days} day{'s' if days != 1 else ''} from now"
        return (
            f"training provider {settings.name!r} is OpenAI's API, which takes no new fine-tuning jobs "
            f"from {_NO_NEW_JOBS_DAY} ({left}): {_MOVE_TRAINING} before then"
        )
    return (
        f"training provider {settings.name!r} is OpenAI's API, which takes no new fine-tuning jobs "
        f"since {_NO_NEW_JOBS_DAY}, so tonight's job will be refused: {_MOVE_TRAINING}"
    )


def job_refused_hint(settings: ProviderSettings, today: date) -> str:
    """What to add when OpenAI's own API refuses to create a fine-tuning job ('' elsewhere)."""
    if settings.kind != "openai":
        return ""
    since = "since" if today >= OPENAI_NO_NEW_JOBS_FROM else "from"
    return (
        "OpenAI is winding down self-serve fine-tuning (no new jobs for organisations created since "
        f"May 2026, none for anyone {since} {_NO_NEW_JOBS_DAY}); if that is why, {_MOVE_TRAINING}"
    )


@contextmanager
def api_errors(what: str, settings: ProviderSettings, *, refused_hint: str = "") -> Iterator[None]:
    """Translate openai SDK errors into retrain's, with messages free of credentials.

    ``refused_hint`` is added to the message of a request the provider refused (a 4xx other
    than 401 and 429, which have their own advice).
    """
    secret = settings.api_key.get_secret_value()
    try:
        yield
    except openai.AuthenticationError:
        raise ProviderError(
            f"{what}: provider {settings.name!r} rejected the API key: check {api_key_source(settings)}"
        ) from None
    except openai.RateLimitError as exc:
        code = _error_code(exc)
        detail = redact(_error_message(exc), secret)
        if is_quota_error(code, detail):
            raise QuotaExceeded(
                f"{what}: provider {settings.name!r} quota reached ({code or 'limit'}): {detail} "
                "The next run tries again; wait for the limit to reset or raise it with the provider."
            ) from None
        raise RateLimited(
            f"{what}: provider {settings.name!r} is rate limiting (429) after retries: {detail}"
        ) from None
    except openai.APIConnectionError as exc:
        raise ProviderUnavailable(
            f"{what}: cannot reach provider {settings.name!r} ({type(exc).__name__}): "
            "start the local stack (`retrain local up`) or check RETRAIN_PROVIDER__BASE_URL"
        ) from None
    except openai.InternalServerError as exc:
        raise ProviderUnavailable(
            f"{what}: provider {settings.name!r} failed with {exc.status_code} after retries"
        ) from None
    except openai.APIStatusError as exc:
        detail = redact(_error_message(exc), secret)
        hint = f" {refused_hint}" if refused_hint and 400 <= exc.status_code < 500 else ""
        raise ProviderError(
            f"{what}: provider {settings.name!r} answered {exc.status_code}: {detail}{hint}"
        ) from None


def api_key_source(settings: ProviderSettings) -> str:
    """Where this provider's API key comes from, for an error that says to check it."""
    if settings.api_key_secret_block:
        return f"the value of the Prefect Secret block {settings.api_key_secret_block!r}"
    return "RETRAIN_PROVIDER__API_KEY (RETRAIN_PROVIDERS__<KEY>__API_KEY for a further provider)"


def require_model(settings: ProviderSettings, model_id: str) -> None:
    """Raise UnknownModel unless the provider knows ``model_id`` (one GET /models/{id})."""
    client = make_client(settings)
    with api_errors(f"looking up model {model_id}", settings):
        try:
            client.models.retrieve(model_id)
        except openai.NotFoundError:
            raise UnknownModel(
                f"provider {settings.name!r} does not know model {model_id!r}: check the model id "
                f"(`retrain jobs list --provider {settings.name}` shows the fine-tuned ones) and the provider"
            ) from None


def create_once(
    client: OpenAI,
    create: Callable[[OpenAI], T],
    find: Callable[[], T | None],
    settings: ProviderSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Send a create (job, file) that must not happen twice, retrying only where that is safe.

    The SDK's own retries would resend the POST after a timeout or a 5xx, which may already
    have created the object. Here a 429 (never processed) is retried after its Retry-After;
    after a timeout or a 5xx, ``find`` looks for the object first and the create is sent again
    only if it is not there. Call inside ``api_errors``, which translates the last error.
    """
    once = client.with_options(max_retries=0)
    delay = 1.0
    for attempt in range(settings.max_retries + 1):
        last = attempt == settings.max_retries
        try:
            return create(once)
        except openai.RateLimitError as exc:
            if last or is_quota_error(_error_code(exc), _error_message(exc)):
                raise
            wait = _retry_after(exc) or delay
        except (openai.APIConnectionError, openai.InternalServerError):
            if last:
                raise
            found = find()
            if found is not None:
                return found
            wait = delay
        sleep(min(wait, 60.0))
        delay = min(delay * 2, 30.0)
    raise AssertionError("the loop returns or raises")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        return float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None


def is_quota_error(code: str, message: str) -> bool:
    """A 429 that waiting minutes will not fix: a daily job limit, too many active jobs, no credit."""
    return code in _QUOTA_CODES or bool(_LIMIT_MESSAGE.search(message))


def _error_code(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    return str(error.get("code") or "") if isinstance(error, dict) else ""


def error_detail(exc: openai.APIStatusError, settings: ProviderSettings) -> str:
    """What the provider said about a refused request, free of the API key."""
    return redact(_error_message(exc), settings.api_key.get_secret_value())


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or exc.message)


def provider_named(settings: Settings, name: str) -> ProviderSettings:
    """The configured provider called name (the registry records it beside each model)."""
    if name == settings.provider.name:
        return settings.provider
    for key, provider in settings.providers.items():
        if name in (key, provider.name):
            return provider
    known = ", ".join(sorted({settings.provider.name, *(p.name for p in settings.providers.values())}))
    key = re.sub(r"[^a-z0-9_]", "_", name.lower())  # env keys come lower-cased; no '-' in shells
    prefix = f"RETRAIN_PROVIDERS__{key.upper()}"
    named = "" if key == name else f"{prefix}__NAME={name}, "
    raise ConfigError(
        f"provider {name!r} is not configured (known: {known}): "
        f"add it with {named}{prefix}__KIND / __BASE_URL / __API_KEY"
    )
