"""The nightly flow's dispatch of `train-lora` against a real Prefect server (no worker, so the
runs stay scheduled): the same dataset version and config find the same training flow run, a
failed one is followed by a new attempt, and cancelling the night cancels its training run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow, get_client
from prefect.states import Failed
from typer.testing import CliRunner

from flows.train_lora import train_lora
from retrain.cli.main import app
from retrain.config.services import S3Settings
from retrain.config.settings import get_settings
from retrain.storage.layout import job_key
from retrain.storage.object_store import ObjectStore
from retrain.train.budget import month_jobs
from retrain.train.lora.runs import LoraRun, RunProgress, lora_run, write_progress
from retrain.train.result import LossPoint
from tasks.lora import StartedRun, cancel_lora_runs_of, start_lora_training

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


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


_NIGHT_START = """
import sys
from prefect import flow
from retrain.config.settings import get_settings
from retrain.train.lora.runs import lora_run
from tasks.lora import start_lora_training, wait_for_lora_training

@flow
def night_start(version: str) -> None:
    wait_for_lora_training(start_lora_training(lora_run(get_settings().lora, version)))

night_start(sys.argv[1])
"""


def _runs_named(name: str) -> list[UUID]:
    with get_client(sync_client=True) as client:
        return [run.id for run in client.read_flow_runs() if run.name == name]


def test_a_night_killed_after_dispatch_finds_its_training_run_instead_of_starting_a_second(
    deployed: LoraRun, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    # No worker serves the pool, so the night waits for its run until it is killed.
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "RETRAIN_TRAINING__WAIT_LIMIT_SECONDS": "600",
    }
    log = tmp_path / "night.log"
    name = f"train-lora-{deployed.model_id}"
    with log.open("wb") as out:
        night = subprocess.Popen(
            [sys.executable, "-c", _NIGHT_START, deployed.dataset_version],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
        try:
            deadline = time.monotonic() + 120
            while not _runs_named(name):
                assert night.poll() is None, f"the night ended before dispatching:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"no training run was dispatched:\n{log.read_text()}"
                time.sleep(0.05)
            night.send_signal(signal.SIGKILL)
        finally:
            night.kill()
            night.wait(timeout=30)
    assert night.returncode == -signal.SIGKILL
    (dispatched,) = _runs_named(name)
    again, _ = dispatch(deployed)  # the night re-run after the crash
    assert again.flow_run_id == dispatched
    assert _runs_named(name) == [dispatched]


def test_retrain_jobs_lists_shows_and_cancels_a_lora_run(
    deployed: LoraRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    started, _ = dispatch(deployed)
    job_id = str(started.flow_run_id)
    store = ObjectStore.from_settings(get_settings().s3)
    write_progress(
        store, deployed, RunProgress(2, 10, [LossPoint(1, 2.5), LossPoint(2, 2.25, 2.4)], "epoch 1")
    )
    cli = CliRunner()

    listed = cli.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.output.splitlines() if job_id in line]
    assert "queued" in row and deployed.dataset_version in row and deployed.model_id in row
    as_json = json.loads(cli.invoke(app, ["jobs", "list", "--json"]).output)
    assert {"job_id": job_id, "status": "queued"}.items() <= next(
        r for r in as_json if r["job_id"] == job_id
    ).items()

    shown = cli.invoke(app, ["jobs", "show", job_id])
    assert shown.exit_code == 0, shown.output
    assert "step 2 of 10" in shown.output and deployed.config_hash in shown.output
    assert "2.2500" in shown.output and "2.4000" in shown.output  # the loss table

    cancelled = cli.invoke(app, ["jobs", "cancel", job_id])
    assert cancelled.exit_code == 0 and "cancelling" in cancelled.output, cancelled.output
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(started.flow_run_id).state
    assert state is not None and state.name in ("Cancelling", "Cancelled")
    record = store.get_json(job_key(deployed.dataset_version, deployed.config_hash))
    assert record["status"] == "cancelled"
    assert month_jobs(store, f"{datetime.now(UTC):%Y-%m}")[job_id]["status"] == "cancelled"

    unknown = cli.invoke(app, ["jobs", "show", "00000000-0000-0000-0000-000000000000"])
    assert unknown.exit_code == 1 and "no lora training run 00000000" in unknown.output
    assert "Traceback" not in unknown.output
    get_settings.cache_clear()
