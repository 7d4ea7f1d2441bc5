"""How tasks that do I/O retry: only transient failures, and never from a cached result."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State

from retrain.exceptions import (
    ProviderUnavailable,
    RateLimited,
    StorageAccessDenied,
    StorageUnavailable,
    TooManyItemErrors,
)

__all__ = ["IO_TASK", "transient_only"]

_TRANSIENT = (
    StorageUnavailable,
    ProviderUnavailable,
    RateLimited,
    TooManyItemErrors,
    ConnectionError,
    TimeoutError,
)


def transient_only(task: Any, task_run: Any, state: State[Any]) -> bool:
    """Retry unreachable services, rate limits and evaluations with too many failed items (their
    answers so far are cached); fail at once on anything else, S3 refusing access included."""
    try:
        state.result(raise_on_failure=True)
    except StorageAccessDenied:
        return False
    except _TRANSIENT:
        return True
    except Exception:
        return False
    return False


IO_TASK: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2.0, 10.0, 30.0],
    "retry_condition_fn": transient_only,
    "cache_policy": NO_CACHE,
}
