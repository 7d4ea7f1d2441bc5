"""Human approval of a promotion: the real nightly flow pauses and waits for input through Prefect."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any
from uuid import UUID

import orjson
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from typer.testing import CliRunner

from flows.nightly import nightly_retrain
from retrain.cli.main import app
from retrain.config.settings import get_settings
from retrain.local.synthetic import make_examples
from retrain.promote.decision import Decision, load_decision
from retrain.registry.registry import Registry
from retrain.storage.layout import DECISION_PREFIX, LAST_DECISION_KEY
from tests.pipeline.conftest import Stack

pytestmark = pytest.mark.slow


def _land(stack: Stack, key: str, n: int, seed: int) -> None:
    stack.store.put_bytes(key, b"".join(orjson.dumps(ex) + b"\n" for ex in make_examples(n, seed=seed)))


def _require_approval(monkeypatch: pytest.MonkeyPatch, timeout: int) -> None:
    monkeypatch.setenv("RETRAIN_EVALUATION__REQUIRE_APPROVAL", "true")
    monkeypatch.setenv("RETRAIN_EVALUATION__APPROVAL_TIMEOUT_SECONDS", str(timeout))
    get_settings.cache_clear()


def _paused_run(deadline: float) -> UUID | None:
    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=paused)
            if runs:
                return runs[0].id
            time.sleep(0.5)
    return None


@contextmanager
def _resume_when_paused(
    run_input: dict[str, Any], meanwhile: Callable[[], None] = lambda: None
) -> Iterator[list[UUID]]:
    """Another thread: wait for the run to pause, do ``meanwhile`` (what an operator does during
    the wait), then resume it with run_input, as the UI would."""
    resumed: list[UUID] = []
    errors: list[BaseException] = []

    def answer() -> None:
        try:
            run_id = _paused_run(time.monotonic() + 600)
            if run_id is not None:
                meanwhile()
                resume_flow_run(run_id, run_input=run_input)
                resumed.append(run_id)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield resumed
    thread.join(timeout=60)
    assert not errors, errors


def _only_decision(stack: Stack) -> Decision:
    decisions = [i.key for i in stack.store.list(DECISION_PREFIX) if not i.key.endswith(LAST_DECISION_KEY)]
    assert len(decisions) == 1, decisions
    decision = load_decision(stack.store, stack.store.get_json(LAST_DECISION_KEY)["dataset_version"])
    assert decision is not None
    return decision


def _answered_night(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    answer: dict[str, Any],
    meanwhile: Callable[[], None] = lambda: None,
) -> Any:
    """A night with approval required that pauses and gets ``answer`` (after ``meanwhile``); its state."""
    _require_approval(monkeypatch, timeout=300)
    _land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1)
    with _resume_when_paused(answer, meanwhile=meanwhile) as resumed:
        state = nightly_retrain(night=date(2026, 11, 1), return_state=True)
    assert resumed, "the flow never paused for approval"
    return state


def test_an_approved_promotion_moves_production_and_records_the_approver(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = {"approve": True, "approver": "alice", "note": "looked at the report"}
    state = _answered_night(stack, monkeypatch, answer)
    assert state.is_completed() and "promoted" in str(state.message), state.message

    decision = _only_decision(stack)
    assert decision.promote
    assert decision.approval is not None
    assert decision.approval.verdict == "approved"
    assert decision.approval.by == "alice"
    assert decision.approval.note == "looked at the report"
    assert "approved by alice" in decision.reason
    production = Registry(stack.store).get("production")
    assert production is not None and production.model_id == decision.candidate.model_id


def test_an_explicit_rejection_keeps_production_and_records_who_rejected(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = {"approve": False, "approver": "bob", "note": "refusals rose on the guardrail set"}
    state = _answered_night(stack, monkeypatch, answer)
    assert state.is_completed() and "rejected" in str(state.message), state.message

    decision = _only_decision(stack)
    assert not decision.promote
    assert decision.approval is not None
    assert (decision.approval.verdict, decision.approval.by) == ("rejected", "bob")
    assert decision.approval.note == "refusals rose on the guardrail set"
    assert "rejected by bob" in decision.reason
    assert Registry(stack.store).get("production") is None


def test_no_answer_before_the_timeout_rejects_and_a_rerun_does_not_promote(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _require_approval(monkeypatch, timeout=2)
    _land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1)
    state = nightly_retrain(night=date(2026, 11, 1), return_state=True)
    assert state.is_completed() and "rejected" in str(state.message), state.message

    decision = _only_decision(stack)
    assert not decision.promote
    assert decision.approval is not None
    assert decision.approval.verdict == "rejected" and decision.approval.by == "timeout"
    assert "## Approval: rejected" in decision.report_markdown
    assert Registry(stack.store).get("production") is None

    again = nightly_retrain(night=date(2026, 11, 1), return_state=True)
    assert "no new data" in str(again.message)
    assert Registry(stack.store).get("production") is None


def test_production_moved_during_the_approval_wait_supersedes_the_promotion(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator points production at another model from the CLI while the night waits; the
    approval that comes afterwards must not undo that: the night ends Superseded."""
    pinned = "ft:gpt-4o-mini-2024-07-18:acme::known-good"

    def pin() -> None:
        pinned_now = CliRunner().invoke(
            app, ["alias", "set", "production", pinned, "--no-verify", "--reason", "pin a known-good model"]
        )
        assert pinned_now.exit_code == 0, pinned_now.output

    answer = {"approve": True, "approver": "alice", "note": "looked at the report"}
    state = _answered_night(stack, monkeypatch, answer, meanwhile=pin)
    assert state.is_completed() and state.name == "Superseded", (state.name, state.message)
    assert f"superseded: production moved to {pinned}" in str(state.message)

    production = Registry(stack.store).get("production")
    assert production is not None and production.model_id == pinned  # the operator's change stands
    decision = _only_decision(stack)
    assert not decision.promote and decision.superseded_by == pinned
    assert decision.approval is not None and decision.approval.verdict == "approved"

    again = nightly_retrain(night=date(2026, 11, 1), return_state=True)
    assert "was already superseded" in str(again.message)
    assert Registry(stack.store).current("production").model.model_id == pinned
