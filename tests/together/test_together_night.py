"""The real nightly flow with ``RETRAIN_TRAINING__BACKEND=together`` against the local Together endpoint.

The flow is unchanged in structure: the together SDK uploads and trains, the candidate answers
through Together's OpenAI-compatible API, and the gate decides. Faults are absorbed as on the
OpenAI endpoint, failing jobs are retried or recorded, a SIGKILLed night resumes the same job, and
cancelling the flow run cancels it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.states import Cancelling
from together import Together
from together.types.fine_tuning_list_response import Data
from typer.testing import CliRunner

from flows.nightly import nightly_retrain
from retrain.cli.main import app
from retrain.config.settings import get_settings
from retrain.registry.registry import Registry
from retrain.storage.layout import FAILURE_PREFIX
from retrain.storage.layout import JOB_PREFIX as JOB_STATE
from retrain.storage.layout import UPLOAD_PREFIX as UPLOAD_STATE
from retrain.train.budget import month_spend
from retrain.train.job_spec import job_spec
from retrain.train.jobs import ensure_job
from retrain.train.uploads import upload_training_file
from tasks.training import cancel_training_of_run
from tests.faults.support import land, production_history, run, set_faults
from tests.faults.test_crash import kill_when, night_in_subprocess
from tests.finetune.conftest import chat_file
from tests.pipeline.conftest import Stack, stack  # noqa: F401

pytestmark = pytest.mark.slow

NIGHT = "2026-11-01"
NEXT = "2026-11-02"


@pytest.fixture
def together_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:  # noqa: F811
    for name, value in {
        "RETRAIN_TRAINING__BACKEND": "together",
        "RETRAIN_PROVIDERS__TOGETHER__KIND": "together",
        "RETRAIN_PROVIDERS__TOGETHER__BASE_URL": f"{stack.api_root}/together/v1",
        "RETRAIN_TOGETHER__N_EPOCHS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield Stack(get_settings(), stack.store, stack.api_root)


def together(ts: Stack) -> Together:
    return Together(api_key="x", base_url=f"{ts.api_root}/together", max_retries=0)


def together_jobs(ts: Stack) -> list[Data]:
    return sorted(together(ts).fine_tuning.list().data, key=lambda job: job.created_at)


def test_a_night_trains_on_together_evaluates_through_its_chat_api_and_absorbs_faults(
    together_stack: Stack,
) -> None:
    ts = together_stack
    land(ts, NIGHT)
    set_faults(
        ts,
        rules=[
            {"route": "jobs", "kind": "429", "retry_after": 0.05, "count": 2},
            {"route": "/fine-tunes", "method": "POST", "kind": "500", "count": 1},
            {"route": "chat", "kind": "429", "retry_after": 0.05, "rate": 0.1, "count": 5},
            {"route": "/fine-tunes*", "method": "GET", "kind": "slow", "delay": 0.2, "count": 2},
        ],
    )
    state = run(NIGHT)
    assert state.is_completed() and "promoted" in state.message, state.message

    (job,) = together_jobs(ts)  # the 500 on create was found again, not created twice
    assert job.status == "completed" and job.training_type is not None and job.training_type.type == "Lora"
    assert job.n_epochs == 2 and job.model == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    production = Registry(ts.store).get("production")
    assert production is not None
    assert production.model_id == job.x_model_output_name
    assert production.provider == "together"
    assert production_history(ts) == [("promote", job.x_model_output_name)]
    routes = ts.admin("GET", "/admin/stats").json()["routes"]
    assert routes.get("POST /chat/completions", 0) > 0  # the candidate answered through /together/v1

    listed = CliRunner().invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0 and job.id in listed.output and "succeeded" in listed.output, listed.output
    shown = CliRunner().invoke(app, ["jobs", "show", job.id])
    assert shown.exit_code == 0 and str(job.x_model_output_name) in shown.output, shown.output

    # The same data again: nothing new to train, no second job, no second upload.
    uploads = len(list(ts.store.list(UPLOAD_STATE)))
    again = run(NIGHT)
    assert again.is_completed() and again.name == "NoNewData", again.message
    assert len(together_jobs(ts)) == 1 and len(list(ts.store.list(UPLOAD_STATE))) == uploads


def test_failing_jobs_are_retried_and_a_blocked_one_is_recorded(together_stack: Stack) -> None:
    ts = together_stack
    land(ts, NIGHT)
    set_faults(ts, next_job="fail")
    failed = run(NIGHT)
    assert failed.is_failed() and "the next run starts a new job" in str(failed.message), failed.message
    assert production_history(ts) == []

    retried = run(NIGHT)  # transient: a new job for the same version
    assert retried.is_completed() and "promoted" in retried.message, retried.message
    assert [job.status for job in together_jobs(ts)] == ["error", "completed"]

    land(ts, NEXT, seed=2)
    set_faults(ts, next_job="blocked")
    blocked = run(NEXT)
    assert blocked.is_failed() and "failed permanently" in str(blocked.message), blocked.message
    assert "moderation" in str(blocked.message)
    assert len(list(ts.store.list(FAILURE_PREFIX))) == 1
    later = run(NEXT)
    assert later.name == "NoNewData" and "is not trained again" in later.message, later.message
    assert len(together_jobs(ts)) == 3
    assert len(production_history(ts)) == 1


def test_a_together_job_is_held_to_the_budget_at_togethers_own_price(
    together_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ts = together_stack
    land(ts, NIGHT)
    monkeypatch.setenv("RETRAIN_TRAINING__MAX_TRAINING_COST_USD", "0.000001")
    get_settings.cache_clear()
    refused = run(NIGHT)
    assert refused.is_failed(), refused.message
    assert "BudgetExceeded" in refused.message and "max_training_cost_usd" in refused.message
    assert together_jobs(ts) == [] and list(ts.store.list(JOB_STATE)) == []
    (train,) = [f for f in together(ts).files.list().data if f.filename.endswith("-train.jsonl")]
    quote: Any = together(ts).fine_tuning.estimate_price(
        training_file=train.id, model=ts.settings.together.base_model, n_epochs=2
    )
    assert quote.estimated_total_price > 0.000001

    uploads = len(list(ts.store.list(UPLOAD_STATE)))
    monkeypatch.setenv("RETRAIN_TRAINING__MAX_TRAINING_COST_USD", "100")
    monkeypatch.setenv("RETRAIN_TRAINING__MONTHLY_BUDGET_USD", "100")
    get_settings.cache_clear()
    trained = run(NIGHT)
    assert trained.is_completed() and "promoted" in trained.message, trained.message
    (job,) = together_jobs(ts)
    assert job.training_file == train.id  # the file priced is the file trained on, uploaded once
    assert len(list(ts.store.list(UPLOAD_STATE))) == uploads
    spent = month_spend(ts.store, f"{job.created_at:%Y-%m}")
    entry, price = spent.jobs[job.id], quote.estimated_total_price
    assert entry["status"] == "succeeded" and entry["estimated_usd"] == pytest.approx(price)
    assert not entry["billed"] and entry["counted_usd"] == pytest.approx(price)  # no table price: the quote


def test_a_night_killed_after_creating_its_job_resumes_that_job(
    together_stack: Stack, tmp_path: Path
) -> None:
    ts = together_stack
    land(ts, NIGHT)
    # Reading the new job back hangs, so the kill comes after the create and before its job record.
    set_faults(
        ts,
        hold_jobs=True,
        rules=[{"route": "/fine-tunes/ft-*", "method": "GET", "kind": "slow", "delay": 20}],
    )
    with night_in_subprocess(tmp_path) as process:
        kill_when(process, lambda: bool(together_jobs(ts)), tmp_path / "night.log")
    (job,) = together_jobs(ts)
    assert list(ts.store.list(JOB_STATE)) == []  # found again by its suffix's tag, not by a record

    set_faults(ts)
    state = run(NIGHT)
    assert state.is_completed() and "promoted" in state.message, state.message
    (done,) = together_jobs(ts)
    assert done.id == job.id and done.status == "completed"
    assert production_history(ts) == [("promote", done.x_model_output_name)]


def test_cancelling_the_flow_run_cancels_its_together_job(together_stack: Stack) -> None:
    ts = together_stack
    provider = ts.settings.training_provider()
    from retrain.providers.clients import make_training_client

    client: Any = make_training_client(provider)
    with get_client(sync_client=True) as prefect:
        flow_run = prefect.create_flow_run(nightly_retrain, parameters={"night": NIGHT})
        prefect.set_flow_run_state(flow_run.id, Cancelling(), force=True)
        flow_run = prefect.read_flow_run(flow_run.id)
    set_faults(ts, next_job="hang")
    train = upload_training_file(client, ts.store, provider, chat_file(30, 5), role="train")
    spec = job_spec(
        ts.settings.training,
        dataset_version="ds-1",
        run_id="r",
        night=date(2026, 11, 1),
        together=ts.settings.together,
    )
    started = ensure_job(
        client, ts.store, provider, spec, training_file=train, validation_file=None, owner=str(flow_run.id)
    )
    assert started.job.status in ("validating_files", "queued", "running")
    assert flow_run.state is not None
    cancel_training_of_run(nightly_retrain, flow_run, flow_run.state)
    (job,) = together_jobs(ts)
    assert job.id == started.job.id and job.status == "cancelled"
