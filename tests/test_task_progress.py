"""TaskProgress in a real Prefect run: a progress artifact that ends at 100 %, and a log line at
most every interval plus one at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect import flow, get_client, task
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker

from tasks.progress import TaskProgress

pytestmark = pytest.mark.slow


def clock(times: list[float]) -> Iterator[float]:
    yield from times


@task
def count_to_five() -> None:
    times = clock([0.0, 1.0, 11.0, 12.0, 13.0, 14.0])  # one reading at the start, one per update
    progress = TaskProgress(
        "counting", key="counting-progress", every_seconds=10.0, clock=lambda: next(times)
    )
    for done in range(1, 6):
        progress.update(done, 5, f"{done}/5 counted")


@flow
def counting() -> None:
    count_to_five()


def test_progress_is_an_artifact_and_a_line_now_and_then(prefect_harness: None) -> None:
    state = counting(return_state=True)
    flow_run_id = state.state_details.flow_run_id
    APILogWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as prefect:
        logs = prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    lines = [log.message for log in logs if log.message.startswith("counting:")]
    assert lines == ["counting: 2/5 counted", "counting: 5/5 counted"]  # at 11 s, then at the end
    [bar] = [artifact for artifact in artifacts if artifact.type == "progress"]
    assert bar.data == 100.0 and bar.description == "counting" and bar.key == "counting-progress"
