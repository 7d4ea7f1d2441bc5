"""Which failures a task that does I/O retries, run by Prefect itself (tasks.retry.IO_TASK)."""

from __future__ import annotations

import pytest
from prefect import flow, task

from retrain.exceptions import (
    ConfigError,
    EvaluationError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    StorageAccessDenied,
    StorageUnavailable,
    TooManyItemErrors,
)
from tasks.evaluate import evaluate_models
from tasks.retry import IO_TASK

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def attempts_until_done(error: Exception) -> tuple[int, str]:
    """Run a task that raises ``error`` on its first attempt: (attempts made, final outcome)."""
    attempts: list[int] = []

    @task(**(IO_TASK | {"retry_delay_seconds": 0}))
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise error
        return "done"

    @flow
    def one_task() -> str:
        try:
            return flaky()
        except Exception as exc:
            return type(exc).__name__

    outcome = one_task()
    return len(attempts), outcome


@pytest.mark.parametrize(
    "error",
    [
        StorageUnavailable("S3 request failed"),
        ProviderUnavailable("502 after retries"),
        RateLimited("429 after retries"),
        TooManyItemErrors("5 of 40 answers failed; run again: answers already received are cached"),
        ConnectionError("reset"),
        TimeoutError("read timed out"),
    ],
)
def test_transient_failures_are_retried(error: Exception) -> None:
    assert attempts_until_done(error) == (2, "done")


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("bad setting"),
        StorageAccessDenied("S3 refused access to s3://b/reports/x (AccessDenied)"),
        ProviderError("provider refused the API key"),
        EvaluationError("model 'x' is not served"),
        ValueError("a bug"),
    ],
)
def test_other_failures_fail_at_once(error: Exception) -> None:
    assert attempts_until_done(error) == (1, type(error).__name__)


def test_evaluation_retries_as_other_io_tasks_do() -> None:
    assert evaluate_models.retries == IO_TASK["retries"]
    assert evaluate_models.retry_condition_fn is IO_TASK["retry_condition_fn"]
