"""The fault matrix: the real nightly flow against the local server's fault injector.

In every case the `production` alias does not move on the faulty night, S3 stays
consistent, and the next run does the right thing (resume, retry or start fresh) without a
duplicate job or a second upload of the same file.
"""

from __future__ import annotations

import pytest

from retrain.config.settings import get_settings
from retrain.promote.decision import load_decision
from retrain.storage.layout import JOB_PREFIX as JOB_STATE
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


JOB_FAULTS = {
    "fail": "server_error",
    "cancel": "cancelled",
    "blocked": "safety_check_failed",
    "no_model": "without a model",
}


def test_jobs_that_fail_are_cancelled_or_blocked_are_never_promoted_and_each_next_run_retrains(
    stack: Stack,
) -> None:
    land(stack, NIGHT)
    files: list[str] = []
    for night, (fault, clue) in enumerate(JOB_FAULTS.items(), start=1):
        set_faults(stack, next_job=fault)
        state = run(f"2026-11-{night:02d}")
        assert state.is_failed() and clue in state.message, (fault, state.message)
        known = jobs(stack)
        assert len(known) == night, (fault, [j.status for j in known])  # one new job a night, no more
        bad = known[-1]
        assert bad.status in ("failed", "cancelled", "succeeded") and not bad.fine_tuned_model, fault
        assert production_history(stack) == [], fault
        assert load_decision(stack.store, (bad.metadata or {})["dataset_version"]) is None, fault
        assert not files or uploaded_files(stack) == files, fault  # the same two files every night
        files = uploaded_files(stack)
        assert_consistent(stack)

    set_faults(stack)
    state = run("2026-11-05")
    assert state.is_completed() and "promoted" in state.message, state.message
    *failed, good = jobs(stack)
    assert len(failed) == len(JOB_FAULTS) and good.status == "succeeded"
    assert uploaded_files(stack) == files
    assert production_history(stack) == [("promote", good.fine_tuned_model)]
    assert_consistent(stack)

    assert "no new data" in run("2026-11-06").message
    assert len(jobs(stack)) == len(JOB_FAULTS) + 1


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
