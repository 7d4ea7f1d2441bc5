"""The provider's API key never appears in logs, artifacts, exceptions or the bucket.

A whole night runs with a known key, through induced provider errors (a quota refusal that
fails a night, then 429 and 500 bursts that are retried), and everything a person or a
machine can read afterwards is searched for it: log records captured in this process at
DEBUG, the Prefect run logs, artifacts and state messages read back through the Prefect
client, the exceptions raised, and every object in the bucket.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from retrain.config.settings import get_settings
from tests.pipeline.conftest import Stack

from .support import jobs, land, run, set_faults

pytestmark = pytest.mark.slow

KEY = f"sk-test-LEAKCHECK-{secrets.token_hex(16)}"
CLUES = (KEY, KEY[len("sk-test-") :], KEY[-16:])


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(text)


@pytest.fixture
def captured() -> Iterator[Everything]:
    handler = Everything()
    loggers = [logging.getLogger(name) for name in ("", "prefect", "openai", "httpx", "retrain", "tasks")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.name in ("openai", "httpx", "retrain", "tasks"):
            logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def leaks(texts: list[str]) -> list[str]:
    return [text[:300] for text in texts if any(clue in text for clue in CLUES)]


def prefect_texts(flow_run_ids: list[UUID]) -> list[str]:
    """Run logs, artifacts and every state message of these flow runs and their task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    texts: list[str] = []
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)))
        texts += [log.message for log in logs]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids))
        )
        texts += [f"{a.key} {a.description} {a.data}" for a in artifacts]
        for flow_run_id in flow_run_ids:
            flow_run = client.read_flow_run(flow_run_id)
            texts.append(f"{flow_run.name} {flow_run.parameters} {flow_run.state}")
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids))
        )
        texts += [f"{t.name} {t.state}" for t in task_runs]
    assert logs and artifacts and task_runs, (
        "nothing was read back from Prefect: the search would prove nothing"
    )
    return texts


def exception_texts(state: Any) -> list[str]:
    try:
        state.result()
    except Exception as exc:
        return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    pytest.fail(f"the night was expected to fail: {state.message}")


def bucket_texts(stack: Stack) -> list[str]:
    texts = []
    for info in stack.store.list(""):
        texts.append(info.key)
        texts.append(stack.store.get_bytes(info.key).decode("utf-8", errors="replace"))
    return texts


def test_the_api_key_never_leaks(stack: Stack, monkeypatch: pytest.MonkeyPatch, captured: Everything) -> None:
    monkeypatch.setenv("RETRAIN_PROVIDER__API_KEY", KEY)
    get_settings.cache_clear()
    assert get_settings().provider.api_key.get_secret_value() == KEY
    assert leaks([f"a line with {KEY} in it"]), "the search itself must find a planted key"

    land(stack, "2026-11-01")
    set_faults(
        stack, rules=[{"route": "/fine_tuning/jobs", "method": "POST", "kind": "quota", "retry_after": 0.05}]
    )
    refused = run("2026-11-01")
    assert refused.is_failed() and "insufficient_quota" in refused.message
    errors = exception_texts(refused)

    set_faults(
        stack,
        rules=[
            {"route": "jobs", "kind": "429", "retry_after": 0.05, "count": 2},
            {"route": "files", "kind": "500", "count": 1},
            {"route": "chat", "kind": "429", "retry_after": 0.05, "rate": 0.1, "count": 5},
        ],
    )
    night = run("2026-11-02")
    assert night.is_completed() and "promoted" in night.message, night.message
    assert len(jobs(stack)) == 1

    flow_runs = [refused.state_details.flow_run_id, night.state_details.flow_run_id]
    found = {
        "captured logs": leaks(captured.lines),
        "prefect logs, artifacts and states": leaks(prefect_texts(flow_runs)),
        "exceptions and state messages": leaks([*errors, refused.message, night.message]),
        "bucket": leaks(bucket_texts(stack)),
    }
    assert captured.lines, "no log record was captured: the search would prove nothing"
    assert all(not texts for texts in found.values()), found
