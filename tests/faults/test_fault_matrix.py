"""The fault matrix: the real nightly flow against the local server's fault injector.

Job failures come in three kinds (``retrain.train.failures``): transient ones are retrained the
next night, a permanent one is recorded and its dataset version never trained again, and a
configuration refusal stops every night with the fix until the setting changes.

In every case the `production` alias does not move on the faulty night, S3 stays
consistent, and the next run does the right thing (resume, retry or start fresh) without a
duplicate job or a second upload of the same file.
"""

from __future__ import annotations

import pytest

from retrain.config.settings import get_settings
from retrain.promote.decision import load_decision
from retrain.storage.layout import FAILURE_PREFIX
from retrain.storage.layout import JOB_PREFIX as JOB_STATE
from retrain.train.failures import load_failure
from tests.pipeline.conftest import Stack

from .support import (
    assert_consistent,
    jobs,
    land,
    production_history,
    run,
    set_faults,
    uploaded_files,
)

pytestmark = pytest.mark.slow

NIGHT = "2026-11-01"
NEXT = "2026-11-02"


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def promoted_once(stack: Stack) -> None:
    history = production_history(stack)
    assert [action for action, _ in history] == ["promote"], history
    (job,) = jobs(stack)
    assert history[0][1] == job.fine_tuned_model
    decision = load_decision(stack.store, (job.metadata or {})["dataset_version"])
    assert decision is not None and decision.promote and decision.job_id == job.id


TRANSIENT_RULES = [
    {"route": "jobs", "kind": "429", "retry_after": 0.05, "count": 3},
    {"route": "files", "kind": "429", "retry_after": 0.05, "count": 2},
    {"route": "chat", "kind": "429", "retry_after": 0.05, "rate": 0.1, "count": 10},
    {"route": "/fine_tuning/jobs", "method": "POST", "kind": "500", "count": 3},
    {"route": "/fine_tuning/jobs*", "method": "GET", "kind": "slow", "delay": 2.5, "count": 2},
    {"route": "*", "method": "GET", "kind": "slow", "delay": 0.05},
]


def test_429_bursts_500s_and_slow_responses_are_absorbed_and_the_night_completes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three 500s on job creation outlast the client's own two retries: the task retries.
    # Two reads take longer than the 2 s timeout: the client retries them.
    configure(monkeypatch, RETRAIN_PROVIDER__MAX_RETRIES="2", RETRAIN_PROVIDER__TIMEOUT_SECONDS="2")
    land(stack, NIGHT)
    set_faults(stack, rules=TRANSIENT_RULES)
    state = run(NIGHT)
    assert state.is_completed() and "promoted" in state.message, state.message
    injected = stack.admin("GET", "/admin/stats").json()["faults_injected"]
    assert injected["429"] >= 5 and injected["500"] == 3 and injected["slow"] >= 2, injected
    promoted_once(stack)
    assert len(uploaded_files(stack)) == 2  # train + validation, each once
    assert_consistent(stack)

    set_faults(stack)
    again = run(NIGHT)
    assert "no new data" in again.message
    assert len(jobs(stack)) == 1 and len(uploaded_files(stack)) == 2


TRANSIENT_JOB_FAULTS = {
    "fail": "server_error",
    "cancel": "cancelled",
    "no_model": "without a model",
}


def test_jobs_that_fail_transiently_are_never_promoted_and_each_next_run_retrains_the_version(
    stack: Stack,
) -> None:
    land(stack, NIGHT)
    files: list[str] = []
    for night, (fault, clue) in enumerate(TRANSIENT_JOB_FAULTS.items(), start=1):
        set_faults(stack, next_job=fault)
        state = run(f"2026-11-{night:02d}")
        assert state.is_failed() and clue in state.message, (fault, state.message)
        assert "not trained again" not in state.message, fault
        known = jobs(stack)
        assert len(known) == night, (fault, [j.status for j in known])  # one new job a night, no more
        bad = known[-1]
        assert bad.status in ("failed", "cancelled", "succeeded") and not bad.fine_tuned_model, fault
        assert production_history(stack) == [], fault
        version = (bad.metadata or {})["dataset_version"]
        assert load_decision(stack.store, version) is None, fault
        assert load_failure(stack.store, version) is None, fault
        assert not files or uploaded_files(stack) == files, fault  # the same two files every night
        files = uploaded_files(stack)
        assert_consistent(stack)

    set_faults(stack)
    state = run("2026-11-04")
    assert state.is_completed() and "promoted" in state.message, state.message
    *failed, good = jobs(stack)
    assert len(failed) == len(TRANSIENT_JOB_FAULTS) and good.status == "succeeded"
    assert uploaded_files(stack) == files
    assert production_history(stack) == [("promote", good.fine_tuned_model)]
    assert_consistent(stack)

    assert "no new data" in run("2026-11-05").message
    assert len(jobs(stack)) == len(TRANSIENT_JOB_FAULTS) + 1


PERMANENT_JOB_FAULTS = {
    "blocked": "safety_check_failed",
    "invalid_file": "invalid_training_file",
}


def test_a_job_that_fails_permanently_is_recorded_once_and_its_version_is_never_trained_again(
    stack: Stack,
) -> None:
    for n, (fault, code) in enumerate(PERMANENT_JOB_FAULTS.items()):
        found, after = f"2026-11-{2 * n + 1:02d}", f"2026-11-{2 * n + 2:02d}"
        land(stack, found, seed=n + 1)
        set_faults(stack, next_job=fault)
        state = run(found)
        assert state.is_failed(), (fault, state.name, state.message)  # the one night that alerts
        assert f"failed permanently ({code}:" in state.message and "not trained again" in state.message
        assert "Traceback" not in state.message
        failed = jobs(stack)[-1]
        assert len(jobs(stack)) == n + 1 and failed.status == "failed", fault
        version = (failed.metadata or {})["dataset_version"]
        failure = load_failure(stack.store, version)
        assert failure is not None and failure.job_id == failed.id and failure.code == code, fault
        assert version in state.message and load_decision(stack.store, version) is None

        set_faults(stack)  # the service would now train it: it is not asked to
        if n:  # one quiet night shows it (test_failures covers the crash path of the other)
            assert load_failure(stack.store, version) == failure
            continue
        quiet = run(after)
        assert quiet.is_completed() and quiet.name == "NoNewData", (fault, quiet.name, quiet.message)
        assert f"{version} is not trained again" in quiet.message and failed.id in quiet.message
        assert len(jobs(stack)) == n + 1, fault  # never trained twice
        assert load_failure(stack.store, version) == failure  # recorded once, not rewritten
        assert production_history(stack) == []
        assert_consistent(stack)

    land(stack, "2026-11-05", seed=9)  # new examples make a new version, which trains
    state = run("2026-11-05")
    assert state.is_completed() and "promoted" in state.message, state.message
    *failed_jobs, good = jobs(stack)
    assert len(failed_jobs) == len(PERMANENT_JOB_FAULTS) and good.status == "succeeded"
    assert production_history(stack) == [("promote", good.fine_tuned_model)]
    assert_consistent(stack)


CONFIG_REFUSALS = {  # setting: (value, clue, nights it is left wrong)
    "RETRAIN_TRAINING__BASE_MODEL": ("gpt-3.5-turbo-0301", "does not fine-tune base model", 2),
    "RETRAIN_TRAINING__N_EPOCHS": ("80", "method.supervised.hyperparameters.n_epochs", 1),
}


def test_a_job_refused_for_a_setting_stops_every_night_with_the_fix_until_the_setting_changes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(stack, NIGHT)
    night = 0
    for setting, (value, clue, nights) in CONFIG_REFUSALS.items():
        configure(monkeypatch, **{setting: value})
        for _ in range(nights):  # the same answer every night, and never a job
            night += 1
            state = run(f"2026-11-{night:02d}")
            assert state.is_failed(), (setting, state.name, state.message)
            assert clue in state.message and f"{setting}" in state.message, state.message
            assert "\n" not in state.message.strip() and "Traceback" not in state.message
            assert jobs(stack) == [] and list(stack.store.list(JOB_STATE)) == [], setting
            assert list(stack.store.list(FAILURE_PREFIX)) == [], setting  # nothing held against the data
        monkeypatch.delenv(setting)

    get_settings.cache_clear()
    state = run(f"2026-11-{night + 1:02d}")  # the setting fixed: the same version trains
    assert state.is_completed() and "promoted" in state.message, state.message
    promoted_once(stack)
    assert_consistent(stack)


def test_a_job_past_the_wait_limit_ends_still_training_and_the_next_run_resumes_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, RETRAIN_TRAINING__WAIT_LIMIT_SECONDS="1.5")
    land(stack, NIGHT)
    set_faults(stack, hold_jobs=True)
    state = run(NIGHT)
    assert state.is_completed() and state.name == "StillTraining", (state.name, state.message)
    (job,) = jobs(stack)
    assert job.status == "running" and job.id in state.message
    assert production_history(stack) == []
    assert [stack.store.get_json(i.key)["job_id"] for i in stack.store.list(JOB_STATE)] == [job.id]
    files = uploaded_files(stack)
    assert_consistent(stack)

    set_faults(stack)
    configure(monkeypatch, RETRAIN_TRAINING__WAIT_LIMIT_SECONDS="120")
    state = run(NIGHT)
    assert state.is_completed() and "promoted" in state.message, state.message
    assert [j.id for j in jobs(stack)] == [job.id]
    assert uploaded_files(stack) == files
    promoted_once(stack)
    assert_consistent(stack)


def test_a_hung_job_cancelled_by_an_operator_is_replaced_by_one_new_job(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .support import client

    configure(monkeypatch, RETRAIN_TRAINING__WAIT_LIMIT_SECONDS="1.5")
    land(stack, NIGHT)
    set_faults(stack, next_job="hang")
    assert run(NIGHT).name == "StillTraining"
    (hung,) = jobs(stack)
    assert client(stack).fine_tuning.jobs.cancel(hung.id).status == "cancelled"
    assert production_history(stack) == []
    assert_consistent(stack)

    configure(monkeypatch, RETRAIN_TRAINING__WAIT_LIMIT_SECONDS="120")
    state = run(NEXT)
    assert "promoted" in state.message, state.message
    assert [j.status for j in jobs(stack)] == ["cancelled", "succeeded"]
    assert len(uploaded_files(stack)) == 2
    assert_consistent(stack)


QUOTAS = {
    "daily_limit": "daily_rate_limit_exceeded",
    "job_limit": "concurrent_jobs_limit",
    "quota": "insufficient_quota",
}


def test_quota_and_job_limits_end_the_run_cleanly_and_the_next_run_starts_fresh(stack: Stack) -> None:
    land(stack, NIGHT)
    files: list[str] = []
    for night, (kind, code) in enumerate(QUOTAS.items(), start=1):
        set_faults(
            stack,
            rules=[{"route": "/fine_tuning/jobs", "method": "POST", "kind": kind, "retry_after": 0.05}],
        )
        state = run(f"2026-11-{night:02d}")
        assert state.is_failed(), (kind, state.message)
        assert f"quota reached ({code})" in state.message and "next run tries again" in state.message
        assert "Traceback" not in state.message
        assert jobs(stack) == [], kind
        assert list(stack.store.list(JOB_STATE)) == [], kind
        assert production_history(stack) == [], kind
        assert len(uploaded_files(stack)) == 2 and (not files or uploaded_files(stack) == files), kind
        files = uploaded_files(stack)
        assert_consistent(stack)

    set_faults(stack)
    state = run("2026-11-04")
    assert "promoted" in state.message, state.message
    assert uploaded_files(stack) == files
    promoted_once(stack)
    assert_consistent(stack)
