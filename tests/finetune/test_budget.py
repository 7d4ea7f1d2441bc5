"""Budget: the pre-flight estimate, per-job and monthly limits, and the ledger in state/budget/."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from openai.types.fine_tuning import FineTuningJob
from typer.testing import CliRunner

from retrain.cli.main import app
from retrain.config.services import S3Settings
from retrain.config.settings import get_settings
from retrain.config.stage_settings import TrainingSettings, ValidationSettings
from retrain.exceptions import BudgetExceeded
from retrain.storage.layout import ledger_key
from retrain.storage.object_store import ObjectStore
from retrain.train.budget import (
    GpuRun,
    check_budget,
    check_month_spend,
    estimate_training_cost,
    month_jobs,
    record_gpu_run,
    record_job_cost,
    reserve_job_cost,
    spend_of,
)
from retrain.validate.batch import validate_batch

from .conftest import chat_file

VALIDATION = ValidationSettings()
TODAY = datetime.now(UTC).date()
MONTH = f"{TODAY:%Y-%m}"


def _job(job_id: str, status: str, trained_tokens: int | None = None, **extra: Any) -> FineTuningJob:
    return FineTuningJob.model_validate(
        {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(datetime.now(UTC).timestamp()),
            "model": "gpt-4o-mini-2024-07-18",
            "organization_id": "org",
            "status": status,
            "training_file": "file-1",
            "result_files": [],
            "seed": 1,
            "trained_tokens": trained_tokens,
            "hyperparameters": {"n_epochs": 3},
            "metadata": {"dataset_version": "ds-1", "config_hash": "abc"},
            **extra,
        }
    )


def test_the_estimate_is_the_validators_on_the_same_examples() -> None:
    content = chat_file(200, 3)
    training = TrainingSettings(n_epochs=2)
    ours = estimate_training_cost(content, training, VALIDATION)
    validated = validate_batch(
        [("a.jsonl", [content])], VALIDATION, base_model=training.base_model, training=training
    )
    assert ours is not None and ours.n_examples == 200 and ours.epochs == 2
    assert validated.cost_estimate_usd is not None and ours.usd is not None
    assert round(ours.usd, 4) == validated.cost_estimate_usd
    assert ours.billable_tokens == validated.cost["billable_tokens"]


def test_a_job_above_the_per_job_limit_is_refused(moto_store: ObjectStore) -> None:
    estimate = estimate_training_cost(chat_file(200, 3), TrainingSettings(), VALIDATION)
    assert estimate is not None and estimate.usd is not None and estimate.usd > 0
    below = TrainingSettings(max_training_cost_usd=estimate.usd * 0.9)
    with pytest.raises(BudgetExceeded, match="max_training_cost_usd") as refused:
        check_budget(moto_store, estimate, below, dataset_version="ds-1", config_hash="abc", today=TODAY)
    assert "\n" not in str(refused.value)
    above = TrainingSettings(max_training_cost_usd=estimate.usd * 1.1)
    check_budget(moto_store, estimate, above, dataset_version="ds-1", config_hash="abc", today=TODAY)
    assert (
        check_budget(
            moto_store, estimate, TrainingSettings(), dataset_version="ds-1", config_hash="abc", today=TODAY
        ).month
        == MONTH
    )


def test_the_monthly_total_counts_running_estimates_and_billed_jobs(moto_store: ObjectStore) -> None:
    estimate = estimate_training_cost(chat_file(200, 3), TrainingSettings(), VALIDATION)
    assert estimate is not None and estimate.usd is not None
    training = TrainingSettings(monthly_budget_usd=estimate.usd * 2.5)

    first = _job("ftjob-1", "running")
    reserve_job_cost(moto_store, first, estimate.usd, dataset_version="ds-1", config_hash="abc")
    assert spend_of(month_jobs(moto_store, MONTH)) == pytest.approx(estimate.usd)
    # The same version and config is still running: resuming it costs nothing new.
    resumed = check_budget(
        moto_store, estimate, training, dataset_version="ds-1", config_hash="abc", today=TODAY
    )
    assert resumed.resumed

    # It ends: the billed cost replaces the estimate (gpt-4o-mini: $3 per million tokens).
    billed = record_job_cost(moto_store, _job("ftjob-1", "succeeded", trained_tokens=1_000_000), VALIDATION)
    assert billed == pytest.approx(3.0)
    assert (
        record_job_cost(moto_store, _job("ftjob-1", "succeeded", trained_tokens=1_000_000), VALIDATION)
        == billed
    )
    ledger = moto_store.get_json(ledger_key(MONTH))
    assert ledger["jobs"]["ftjob-1"]["trained_tokens"] == 1_000_000
    assert ledger["jobs"]["ftjob-1"]["dataset_version"] == "ds-1"
    assert spend_of(month_jobs(moto_store, MONTH)) == pytest.approx(3.0)

    # A reservation never overwrites a settled entry.
    reserve_job_cost(moto_store, _job("ftjob-1", "running"), 99.0, dataset_version="ds-1", config_hash="abc")
    assert spend_of(month_jobs(moto_store, MONTH)) == pytest.approx(3.0)

    limit = 3.0 + estimate.usd * 1.5
    fits = TrainingSettings(monthly_budget_usd=limit)
    check_budget(moto_store, estimate, fits, dataset_version="ds-2", config_hash="abc", today=TODAY)
    reserve_job_cost(
        moto_store, _job("ftjob-2", "running"), estimate.usd, dataset_version="ds-2", config_hash="abc"
    )
    with pytest.raises(BudgetExceeded, match="monthly_budget_usd"):
        check_budget(moto_store, estimate, fits, dataset_version="ds-3", config_hash="abc", today=TODAY)
    # Another month starts from zero.
    check_budget(
        moto_store, estimate, fits, dataset_version="ds-3", config_hash="abc", today=date(2099, 1, 1)
    )


def test_an_unpriced_model_cannot_pass_a_limit(moto_store: ObjectStore) -> None:
    for model in ("my-own-model", "gpt-4.5-preview"):  # no tokenizer; no example limit or price
        training = TrainingSettings(base_model=model, max_training_cost_usd=10.0)
        estimate = estimate_training_cost(chat_file(20, 1), training, VALIDATION)
        assert estimate is None or estimate.usd is None
        with pytest.raises(BudgetExceeded, match="no training price"):
            check_budget(moto_store, estimate, training, dataset_version="d", config_hash="c", today=TODAY)
        unlimited = TrainingSettings(base_model=model)
        check = check_budget(
            moto_store, estimate, unlimited, dataset_version="d", config_hash="c", today=TODAY
        )
        assert check.estimated_usd is None


@pytest.mark.slow
def test_retrain_spend_shows_the_months_jobs_against_the_budget(
    s3_env: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_TRAINING__MONTHLY_BUDGET_USD", "50")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    store = ObjectStore.from_settings(s3_env)
    record_job_cost(store, _job("ftjob-done", "succeeded", trained_tokens=2_000_000), VALIDATION)
    reserve_job_cost(store, _job("ftjob-running", "running"), 1.25, dataset_version="ds-2", config_hash="abc")

    shown = CliRunner().invoke(app, ["spend"])
    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): line for line in shown.output.splitlines() if "│ ftjob-" in line}
    assert "2,000,000" in rows["ftjob-done"] and "$6.00" in rows["ftjob-done"]
    assert "ds-2" in rows["ftjob-running"] and "~$1.25 (estimate)" in rows["ftjob-running"]
    assert shown.output.strip().endswith(f"{MONTH}: $7.25 of the $50.00 monthly budget")

    as_json = json.loads(CliRunner().invoke(app, ["spend", "--json"]).output)
    assert (as_json["month"], as_json["spend_usd"], as_json["monthly_budget_usd"]) == (MONTH, 7.25, 50.0)
    assert as_json["jobs"]["ftjob-done"]["billed"] and not as_json["jobs"]["ftjob-running"]["billed"]

    assert CliRunner().invoke(app, ["spend", "--month", "2099-01"]).output.strip() == (
        "no fine-tuning jobs or evaluations recorded for 2099-01"
    )
    assert CliRunner().invoke(app, ["spend", "--month", "26-11"]).exit_code == 2
    get_settings.cache_clear()


def _gpu_run(run_id: str, status: str, seconds: float | None = None, version: str = "ds-9") -> GpuRun:
    return GpuRun(run_id, datetime.now(UTC), version, "lora-hash", status, gpu_seconds=seconds)


def test_a_gpu_run_is_priced_by_its_hours_once_it_ended(moto_store: ObjectStore) -> None:
    assert record_gpu_run(moto_store, _gpu_run("run-1", "running"), gpu_hour_usd=2.0) is None
    assert spend_of(month_jobs(moto_store, MONTH)) == 0
    assert record_gpu_run(moto_store, _gpu_run("run-1", "succeeded", 1800), gpu_hour_usd=2.0) == 1.0
    assert record_gpu_run(moto_store, _gpu_run("run-2", "failed", 900), gpu_hour_usd=None) is None
    jobs = month_jobs(moto_store, MONTH)
    assert jobs["run-1"]["backend"] == "lora" and jobs["run-1"]["gpu_seconds"] == 1800
    assert jobs["run-2"]["billed"] and jobs["run-2"]["counted_usd"] == 0  # recorded, not priced
    assert spend_of(jobs) == 1.0


def test_a_month_at_its_budget_refuses_a_new_gpu_run_and_lets_a_running_one_go_on(
    moto_store: ObjectStore,
) -> None:
    record_job_cost(moto_store, _job("ftjob-done", "succeeded", trained_tokens=2_000_000), VALIDATION)  # $6
    record_gpu_run(moto_store, _gpu_run("run-1", "running", version="ds-running"), gpu_hour_usd=2.0)
    training = TrainingSettings(monthly_budget_usd=6.0)
    with pytest.raises(BudgetExceeded, match=r"\$6.00 has reached monthly_budget_usd \$6.00.*ds-new"):
        check_month_spend(
            moto_store, training, dataset_version="ds-new", config_hash="lora-hash", today=TODAY
        )
    resumed = check_month_spend(
        moto_store, training, dataset_version="ds-running", config_hash="lora-hash", today=TODAY
    )
    assert resumed.resumed and resumed.month_spend_usd == 6.0
    roomy = TrainingSettings(monthly_budget_usd=6.5)
    assert not check_month_spend(
        moto_store, roomy, dataset_version="ds-new", config_hash="lora-hash", today=TODAY
    ).resumed


@pytest.mark.slow
def test_retrain_spend_shows_a_lora_runs_gpu_time_and_its_cost(
    s3_env: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    store = ObjectStore.from_settings(s3_env)
    record_gpu_run(store, _gpu_run("run-priced", "succeeded", 1800), gpu_hour_usd=2.0)
    record_gpu_run(store, _gpu_run("run-unpriced", "succeeded", 5400), gpu_hour_usd=None)
    shown = CliRunner().invoke(app, ["spend"])
    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): line for line in shown.output.splitlines() if "│ run-" in line}
    assert "lora" in rows["run-priced"] and "0.50 h" in rows["run-priced"] and "$1.00" in rows["run-priced"]
    cells = [cell.strip() for cell in rows["run-unpriced"].split("│")]
    assert "1.50 h" in cells and cells[-2] == "-"
    get_settings.cache_clear()
