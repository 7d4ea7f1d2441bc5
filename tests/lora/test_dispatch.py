"""The nightly flow's dispatch of `train-lora` against a real Prefect server (no worker, so the
runs stay scheduled): the same dataset version and config find the same training flow run, a
failed one is followed by a new attempt, and cancelling the night cancels its training run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from prefect import flow, get_client
from prefect.states import Failed

from flows.train_lora import train_lora
from retrain.config.services import S3Settings
from retrain.config.settings import get_settings
from retrain.storage.layout import job_key
from retrain.storage.object_store import ObjectStore
from retrain.train.lora.runs import LoraRun, lora_run
from tasks.lora import StartedRun, cancel_lora_runs_of, start_lora_training

pytestmark = pytest.mark.slow


@flow
def dispatch(run: LoraRun) -> tuple[StartedRun, str]:
    """One night's start of the training run, and the night's own flow run id."""
    from prefect.runtime import flow_run

    return start_lora_training(run), str(flow_run.id)


@pytest.fixture
def deployed(
    request: pytest.FixtureRequest,
    prefect_harness: None,
    s3_env: S3Settings,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> LoraRun:
    monkeypatch.setenv("RETRAIN_TRAINING__BACKEND", "lora")
    monkeypatch.setenv("RETRAIN_LORA__BASE_MODEL", str(tiny_model))
    get_settings.cache_clear()
    ObjectStore.from_settings(s3_env).ensure_bucket()
    train_lora.to_deployment(name="train-lora").apply()
    # The Prefect server is the session's: each test gets a dataset version (an idempotency key) of its own.
    return lora_run(get_settings().lora, f"ds-{hashlib.sha256(request.node.name.encode()).hexdigest()[:8]}")


def test_a_lost_record_of_a_failed_run_still_gets_a_new_attempt(deployed: LoraRun) -> None:
    first, _ = dispatch(deployed)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(first.flow_run_id, Failed(message="node lost"), force=True)
    store = ObjectStore.from_settings(get_settings().s3)
    store.delete(job_key(deployed.dataset_version, deployed.config_hash))
    retried, _ = dispatch(deployed)
    assert retried.flow_run_id != first.flow_run_id
    assert store.get_json(job_key(deployed.dataset_version, deployed.config_hash))["attempt"] >= 2


def test_a_rerun_finds_the_same_training_run_and_a_failed_one_gets_a_new_attempt(deployed: LoraRun) -> None:
    first, _ = dispatch(deployed)
    again, _ = dispatch(deployed)  # the night re-run after a crash
    assert again.flow_run_id == first.flow_run_id and again.resumed and not first.resumed
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        assert [r.id for r in runs if r.name == f"train-lora-{deployed.model_id}"] == [first.flow_run_id]
        client.set_flow_run_state(first.flow_run_id, Failed(message="out of memory"), force=True)
    retried, _ = dispatch(deployed)
    assert retried.flow_run_id != first.flow_run_id and not retried.resumed
    store = ObjectStore.from_settings(get_settings().s3)
    record = store.get_json(job_key(deployed.dataset_version, deployed.config_hash))
    assert record["attempt"] == 2 and record["backend"] == "lora"


def test_cancelling_the_night_cancels_its_training_run(deployed: LoraRun) -> None:
    started, night = dispatch(deployed)
    assert cancel_lora_runs_of(night) == [str(started.flow_run_id)]
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(started.flow_run_id).state
    assert state is not None and state.name in ("Cancelling", "Cancelled")
    assert cancel_lora_runs_of(night) == []  # nothing left to cancel
