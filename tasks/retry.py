"""Which task failures are worth a retry: only the transient ones."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State

from retrain.exceptions import ProviderUnavailable, QuotaExceeded, StorageUnavailable

__all__ = ["TRANSIENT_RETRY_DELAYS", "transient_only"]

TRANSIENT_RETRY_DELAYS: list[float] = [2.0, 10.0, 30.0]
_TRANSIENT = (StorageUnavailable, ProviderUnavailable, QuotaExceeded, ConnectionError, TimeoutError)


def transient_only(task: Any, task_run: Any, state: State[Any]) -> bool:
    """Retry unreachable services and rate limits; fail at once on anything else."""
    try:
        state.result(raise_on_failure=True)
    except _TRANSIENT as exc:
        return "quota reached" not in str(exc)
    except Exception:
        return False
    return False
