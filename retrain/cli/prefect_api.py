"""The Prefect API a command is about to use: answering, or one line that says what to do.

Without this, a wrong or stopped ``PREFECT_API_URL`` surfaced as a traceback of httpx and
Prefect client frames from deep inside `retrain run`, `serve` or `automations apply`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from retrain.config.redact import redact
from retrain.exceptions import ConfigError

__all__ = ["require_prefect_api"]


def require_prefect_api() -> None:
    """Raise ConfigError unless the configured Prefect API answers its health check.

    With no ``PREFECT_API_URL`` (from the environment or the Prefect profile) there is nothing
    to check: Prefect then starts a temporary server of its own.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return
    error: BaseException | None
    try:
        with get_client(sync_client=True) as client:  # checks the server's version on entry
            error = client.api_healthcheck()
    except Exception as exc:  # unreachable, unauthorised, or an incompatible server version
        error = exc
    if error is None:
        return
    if isinstance(error, RuntimeError) and error.__cause__ is not None:  # "Failed to reach API at ..."
        error = error.__cause__
    secrets = (PREFECT_API_KEY.value() or "", urlsplit(url).password or "")
    detail = redact(f"{type(error).__name__}: {error}", *secrets)
    raise ConfigError(
        f"cannot use the Prefect API at {_without_credentials(url)} ({detail}): start that Prefect "
        "server (`retrain local up --with-prefect` starts one on this machine) or fix PREFECT_API_URL"
    )


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))
