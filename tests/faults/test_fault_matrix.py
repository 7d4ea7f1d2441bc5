"""The fault matrix: the real nightly flow against the local server's fault injector.

In every case the `production` alias does not move on the faulty night, S3 stays
consistent, and the next run does the right thing (resume, retry or start fresh) without a
duplicate job or a second upload of the same file.
"""

from __future__ import annotations

import pytest

from retrain.decisions import load_decision
from retrain.finetune import JOB_STATE
from retrain.settings import get_settings
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


TRANSIENT = {
    "429 bursts with Retry-After": (
        {},
        [
            {"route": "jobs", "kind": "429", "retry_after": 0.05, "count": 3},
            {"route": "files", "kind": "429", "retry_after": 0.05, "count": 2},
            {"route": "chat", "kind": "429", "retry_after": 0.05, "rate": 0.1, "count": 10},
        ],
    ),
    "500s past the client's own retries": (
        {"RETRAIN_PROVIDER__MAX_RETRIES": "2"},
        [{"route": "jobs", "kind": "500", "count": 4}, {"route": "files", "kind": "500", "count": 1}],
    ),
    "slow reads, some past the timeout": (
        {"RETRAIN_PROVIDER__TIMEOUT_SECONDS": "1"},
        [
            {"route": "/fine_tuning/jobs*", "method": "GET", "kind": "slow", "delay": 1.5, "count": 2},
            {"route": "*", "method": "GET", "kind": "slow", "delay": 0.05},
        ],
    ),
}


@pytest.mark.parametrize("case", list(TRANSIENT))
def test_transient_faults_are_absorbed_and_the_night_completes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    env, rules = TRANSIENT[case]
    configure(monkeypatch, **env)
    land(stack, NIGHT)
    set_faults(stack, rules=rules)
    state = run(NIGHT)
    assert state.is_completed() and "promoted" in state.message, state.message
    injected = stack.admin("GET", "/admin/stats").json()["faults_injected"]
    assert sum(injected.values()) >= 3, injected
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


@pytest.mark.parametrize("fault", list(JOB_FAULTS))
def test_a_job_that_fails_is_cancelled_or_blocked_is_never_promoted_and_the_next_run_retrains(
    stack: Stack, fault: str
) -> None:
    land(stack, NIGHT)
    set_faults(stack, next_job=fault)
    state = run(NIGHT)
    assert state.is_failed(), state.message
    assert JOB_FAULTS[fault] in state.message, state.message
    (bad,) = jobs(stack)
    assert bad.status in ("failed", "cancelled", "succeeded")
    assert production_history(stack) == []
    assert load_decision(stack.store, (bad.metadata or {})["dataset_version"]) is None
    files = uploaded_files(stack)
    assert_consistent(stack)

    state = run(NEXT)
    assert state.is_completed() and "promoted" in state.message, state.message
    first, second = jobs(stack)
    assert first.id == bad.id and second.status == "succeeded"
    assert uploaded_files(stack) == files  # the same files trained the new job
    history = production_history(stack)
    assert history == [("promote", second.fine_tuned_model)]
    assert bad.fine_tuned_model is None or bad.fine_tuned_model not in {m for _, m in history}
    assert_consistent(stack)

    assert "no new data" in run(NEXT).message
    assert len(jobs(stack)) == 2


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


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("daily_limit", "daily_rate_limit_exceeded"),
        ("job_limit", "concurrent_jobs_limit"),
        ("quota", "insufficient_quota"),
    ],
)
def test_quota_and_job_limits_end_the_run_cleanly_and_the_next_run_starts_fresh(
    stack: Stack, kind: str, code: str
) -> None:
    land(stack, NIGHT)
    set_faults(
        stack, rules=[{"route": "/fine_tuning/jobs", "method": "POST", "kind": kind, "retry_after": 0.05}]
    )
    state = run(NIGHT)
    assert state.is_failed()
    assert f"quota reached ({code})" in state.message and "next run tries again" in state.message
    assert "Traceback" not in state.message
    assert jobs(stack) == []
    assert list(stack.store.list(JOB_STATE)) == []
    assert production_history(stack) == []
    files = uploaded_files(stack)
    assert len(files) == 2
    assert_consistent(stack)

    set_faults(stack)
    state = run(NEXT)
    assert "promoted" in state.message, state.message
    assert uploaded_files(stack) == files
    promoted_once(stack)
    assert_consistent(stack)
