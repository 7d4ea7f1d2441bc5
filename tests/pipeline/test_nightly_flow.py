"""End to end: the real nightly flow on Prefect, moto's S3 server and the local OpenAI server."""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from retrain.config.settings import get_settings
from retrain.ingest.lease import NIGHTLY, Holder, acquire, break_lease, current, release
from retrain.local.synthetic import make_dirty_lines, make_examples
from retrain.promote.decision import load_decision
from retrain.registry.registry import Registry
from retrain.storage.layout import BATCH_PREFIX, lease_prefix
from tests.pipeline.conftest import Stack, client, production_history, run

pytestmark = pytest.mark.slow

TTL = timedelta(minutes=15)


def land(stack: Stack, key: str, n: int, *, seed: int, wrong: float = 0.0, dirty: int = 0) -> int:
    lines = [orjson.dumps(ex).decode() for ex in make_examples(n, seed=seed, wrong_answer_rate=wrong)]
    lines += make_dirty_lines(dirty, seed=seed)
    stack.store.put_bytes(key, ("\n".join(lines) + "\n").encode())
    return len(lines)


def test_promote_improve_reject_idle_and_rollback(stack: Stack) -> None:
    land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1, dirty=9)
    first = run("2026-11-01")
    assert first.is_completed(), first.message
    assert "promoted" in first.message
    history = production_history(stack)
    assert [action for action, _ in history] == ["promote"]
    night1_model = history[-1][1]
    # Training showed its progress: a bar that ends full, and a line with the last step.
    (job,) = client(stack).fine_tuning.jobs.list().data
    steps = [
        log.message
        for log in run_logs(first.state_details.flow_run_id)
        if log.message.startswith(f"fine-tuning job {job.id}: step ")
    ]
    assert steps and re.fullmatch(r".*: step (\d+) of \1, training loss [\d.e+-]+", steps[-1]), steps
    assert progress_bars(first.state_details.flow_run_id)[f"fine-tuning job {job.id}"] == 100.0

    land(stack, "incoming/2026-11-02/a.jsonl", 2000, seed=2)
    second = run("2026-11-02")
    assert "promoted" in second.message, second.message
    night2_model = production_history(stack)[-1][1]
    assert night2_model != night1_model

    land(stack, "incoming/2026-11-03/a.jsonl", 2500, seed=3, wrong=0.9)
    third = run("2026-11-03")
    assert third.is_completed() and "rejected" in third.message, third.message
    assert production_history(stack)[-1][1] == night2_model

    jobs_before = len(client(stack).fine_tuning.jobs.list(limit=100).data)
    files_before = len(client(stack).files.list().data)
    idle = run("2026-11-04")
    assert idle.is_completed() and "no new data" in idle.message
    assert len(client(stack).fine_tuning.jobs.list(limit=100).data) == jobs_before
    assert len(client(stack).files.list().data) == files_before
    assert production_history(stack) == [("promote", night1_model), ("promote", night2_model)]

    Registry(stack.store).rollback("production", steps=1, actor="test", reason="test rollback")
    assert production_history(stack)[-1] == ("rollback", night1_model)


def test_every_line_is_accepted_or_quarantined_and_a_second_ingest_adds_nothing(stack: Stack) -> None:
    lines = land(stack, "incoming/2026-11-01/a.jsonl", 200, seed=7, dirty=15)
    lines += land(stack, "incoming/2026-11-01/b.jsonl", 100, seed=7)  # the same 100 examples again
    assert run("2026-11-01").is_completed()

    manifests = [stack.store.get_json(info.key) for info in stack.store.list(BATCH_PREFIX)]
    assert len(manifests) == 1
    batch = manifests[0]
    assert batch["lines_read"] == lines == batch["accepted"] + batch["quarantined"]
    for entry in batch["objects"]:
        assert entry["lines_read"] == entry["accepted"] + entry["quarantined"]
    assert batch["by_reason"].get("duplicate", 0) >= 100
    docs = stack.store.get_bytes(batch["data_docs_key"])
    assert batch["data_docs_key"].startswith("reports/retrain-2026-11-01/") and b"<html" in docs.lower()
    quarantined = list(stack.store.iter_lines(batch["quarantine_key"]))
    assert len(quarantined) == batch["quarantined"]
    assert all(orjson.loads(row)["reasons"] for row in quarantined)

    again = run("2026-11-01")
    assert "no new data" in again.message
    assert len(list(stack.store.list(BATCH_PREFIX))) == 1


def test_a_night_waits_its_turn_while_another_nightly_run_holds_the_lease(stack: Stack) -> None:
    land(stack, "incoming/2026-11-01/a.jsonl", 5, seed=1)  # too few to train on: a quick night
    other = acquire(stack.store, NIGHTLY, Holder("retrain-2026-10-31", "f-1", "worker-b", 4242, ""), TTL)
    refused = run("2026-11-01")
    assert refused.is_failed()
    assert "another nightly run is in progress: retrain-2026-10-31 (worker-b, pid 4242" in refused.message
    assert not list(stack.store.list(BATCH_PREFIX))  # refused before anything was read

    release(stack.store, other)
    after = run("2026-11-01")
    assert after.is_completed() and "only 5 new example(s)" in after.message, after.message
    assert len(list(stack.store.list(BATCH_PREFIX))) == 1
    newest = list(stack.store.list(lease_prefix(NIGHTLY)))[-1]
    assert stack.store.get_json(newest.key)["released_by"]["run_id"] == "retrain-2026-11-01"

    # What the domain modules log shows in the run's log in the UI, beside the tasks' own lines.
    domain = [(log.name, log.message) for log in run_logs(after.state_details.flow_run_id)]
    assert any(
        name == "retrain.curate.dataset" and message.endswith(": 5 examples in 1 shard(s)")
        for name, message in domain
    ), domain


def progress_bars(flow_run_id: Any) -> dict[str, float]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {str(a.description): float(a.data) for a in artifacts if a.type == "progress"}


def run_logs(flow_run_id: Any) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as prefect:
        return prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


def test_a_holder_whose_flow_run_ended_is_taken_over_without_waiting_for_the_lease_to_lapse(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A run on a pod that died: its host name is gone with it, but Prefect knows it crashed."""
    from prefect import get_client
    from prefect.states import Crashed, Running

    from flows.nightly import nightly_retrain

    land(stack, "incoming/2026-11-01/a.jsonl", 5, seed=1)
    with get_client(sync_client=True) as prefect:
        running = prefect.create_flow_run(nightly_retrain, name="on-another-pod", state=Running())
        pod = Holder("retrain-2026-10-31", str(running.id), "pod-7f9c", 1, "")
        acquire(stack.store, NIGHTLY, pod, TTL)
        refused = run("2026-11-01")
        assert refused.is_failed() and "retrain-2026-10-31 (pod-7f9c, pid 1" in refused.message

        prefect.set_flow_run_state(running.id, Crashed(message="pod evicted"), force=True)
        with caplog.at_level(logging.WARNING):
            after = run("2026-11-01")
    assert after.is_completed(), after.message
    assert f"its flow run {running.id} ended Crashed" in caplog.text
    newest = list(stack.store.list(lease_prefix(NIGHTLY)))[-1]
    assert stack.store.get_json(newest.key)["released_by"]["run_id"] == "retrain-2026-11-01"


def test_a_flow_run_started_again_takes_over_the_lease_of_its_own_earlier_attempt(stack: Stack) -> None:
    """Prefect runs a flow run in one process at a time: a holder with this flow run's id on
    another host is an attempt that died (e.g. retried from the UI after its pod was lost)."""
    from prefect import get_client
    from prefect.flow_engine import run_flow

    from flows.nightly import nightly_retrain

    land(stack, "incoming/2026-11-01/a.jsonl", 5, seed=1)
    parameters = {"night": date(2026, 11, 1)}
    with get_client(sync_client=True) as prefect:
        attempt = prefect.create_flow_run(nightly_retrain, parameters=parameters)
    acquire(stack.store, NIGHTLY, Holder("retrain-2026-11-01", str(attempt.id), "pod-dead", 1, ""), TTL)
    state = run_flow(nightly_retrain, flow_run=attempt, parameters=parameters, return_type="state")
    assert state.is_completed(), state.message


def test_a_night_whose_lease_was_broken_stops_before_starting_a_fine_tuning_job(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator broke the lease while the night ran (or it lapsed while the night stalled):
    another run may be training the same version, so this one must not create a job too."""
    import tasks.training

    upload = tasks.training.upload_training_files

    def upload_then_lose_the_lease(files: Any) -> Any:
        file_ids = upload(files)
        lease = current(stack.store, NIGHTLY)
        assert lease is not None and lease.holder.run_id == "retrain-2026-11-01"
        break_lease(stack.store, lease, "cli:operator")
        return file_ids

    monkeypatch.setattr(tasks.training, "upload_training_files", upload_then_lose_the_lease)
    land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1)
    state = run("2026-11-01")
    assert state.is_failed()
    assert "an operator broke it; stopped before starting a training job" in state.message
    assert client(stack).fine_tuning.jobs.list(limit=100).data == []
    newest = list(stack.store.list(lease_prefix(NIGHTLY)))[-1]
    assert "broken_by" in stack.store.get_json(newest.key)  # left as the operator left it


def test_a_rerun_after_a_crash_resumes_the_job_and_never_promotes_twice(stack: Stack) -> None:
    land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1)
    assert "promoted" in run("2026-11-01").message
    api = client(stack)
    jobs = api.fine_tuning.jobs.list(limit=100).data
    assert len(jobs) == 1
    version = jobs[0].metadata["dataset_version"]
    decision = load_decision(stack.store, version)
    assert decision is not None and decision.promote

    # A crash after the alias moved but before the run finished: the re-run redoes nothing.
    assert "no new data" in run("2026-11-01").message
    assert len(api.fine_tuning.jobs.list(limit=100).data) == 1
    assert len(production_history(stack)) == 1

    # After a rollback the old decision is not re-applied by a re-run.
    land(stack, "incoming/2026-11-02/a.jsonl", 2000, seed=2)
    assert "promoted" in run("2026-11-02").message
    Registry(stack.store).rollback("production", steps=1, actor="test", reason="bad model")
    assert "no new data" in run("2026-11-02").message
    assert [action for action, _ in production_history(stack)] == ["promote", "promote", "rollback"]


def test_inside_a_flow_run_the_line_checks_run_in_spawned_workers(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RETRAIN_VALIDATION__WORKERS", "2")
    monkeypatch.setenv("RETRAIN_VALIDATION__PARALLEL_MIN_LINES", "0")
    get_settings.cache_clear()
    lines = land(stack, "incoming/2026-11-01/a.jsonl", 200, seed=7, dirty=15)
    lines += land(stack, "incoming/2026-11-01/b.jsonl", 100, seed=7)
    with caplog.at_level(logging.INFO, logger="retrain.validate.batch"):
        assert run("2026-11-01").is_completed()
    # a flow run has other threads alive, so the workers must be spawned, not forked
    assert "checking lines in 2 worker processes (spawn)" in caplog.text
    assert f"{lines} of {lines} lines were checked in 2 worker processes" in caplog.text
    (info,) = stack.store.list(BATCH_PREFIX)
    batch = stack.store.get_json(info.key)
    assert batch["lines_read"] == lines == batch["accepted"] + batch["quarantined"]
    assert batch["by_reason"].get("duplicate", 0) >= 100
