"""The decision record without a bucket or Prefect: its stored JSON, the gate's decision as a
record, human approval's effect on it, and what applying it publishes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.results import EvalReport, ModelScores
from retrain.promote.approval import answered, approval_question, not_asked, reviewed, timed_out
from retrain.promote.comparison import GateSets, gate_runs
from retrain.promote.decision import Decision, promotion_decision
from retrain.promote.promotion import Promotion, promotion_key
from retrain.registry.records import ModelRecord

# A decision file as the nightly flow has written it (state/decisions/{version}.json).
STORED: dict[str, Any] = {
    "dataset_version": "ds-1",
    "run_id": "retrain-2026-11-01",
    "job_id": "ftjob-1",
    "candidate": {
        "model_id": "ft:x",
        "provider": "local",
        "base_model": "b",
        "job_id": "ftjob-1",
        "dataset_version": "ds-1",
        "eval_run": "retrain-2026-11-01",
        "scores": {"main": 0.271235},
        "created_at": "2026-11-01T01:02:03.456789Z",
    },
    "production": {
        "model_id": "b",
        "provider": "local",
        "base_model": "b",
        "job_id": None,
        "dataset_version": None,
        "eval_run": None,
        "scores": {},
        "created_at": "2026-11-01T00:00:00Z",
    },
    "promote": False,
    "reason": "rejected by timeout (no answer in 2 s); the gate said x beats y",
    "candidate_score": 0.2712345678,
    "production_score": 0.0,
    "report_markdown": "## md\n",
    "decided_at": "2026-11-01T02:00:00+00:00",
    "approval": {
        "verdict": "rejected",
        "by": "timeout",
        "via": "approval timeout",
        "note": "no answer in 2 s",
        "at": "2026-11-01T01:59:00+00:00",
    },
}
SETTINGS = EvaluationSettings(bootstrap_resamples=1000)


def _scores(label: str, model_id: str, values: list[float], eval_set: str) -> ModelScores:
    return ModelScores(
        label=label,
        model_id=model_id,
        scores=values,
        passed=[v == 1.0 for v in values],
        mean=sum(values) / len(values),
        eval_set=eval_set,
        item_ids=[f"i{n}" for n in range(len(values))],
    )


def _report(eval_set: str, candidate: list[float], production: list[float]) -> EvalReport:
    models = {
        "candidate": _scores("candidate", "ft:x", candidate, eval_set),
        "production": _scores("production", "b", production, eval_set),
    }
    return EvalReport("run", eval_set, "v1", models, {})


def _decision(promote: bool = True) -> Decision:
    data = copy.deepcopy(STORED) | {"promote": promote, "reason": "x beats y", "approval": None}
    return Decision.model_validate(data)


def test_a_stored_decision_loads_typed_and_dumps_to_the_same_json() -> None:
    decision = Decision.model_validate(copy.deepcopy(STORED))
    assert isinstance(decision.candidate, ModelRecord) and decision.candidate.model_id == "ft:x"
    assert decision.approval is not None and decision.approval.who == "rejected by timeout"
    assert decision.model_dump(mode="json") == STORED
    assert list(decision.model_dump(mode="json")) == list(STORED)


def test_a_decision_from_before_approval_existed_loads_without_one() -> None:
    older = {key: value for key, value in STORED.items() if key != "approval"}
    assert Decision.model_validate(older).approval is None


def test_the_gate_decision_becomes_a_record_with_the_candidate_scored() -> None:
    win = [1.0] * 30 + [0.0] * 10
    lose = [0.0] * 30 + [0.0] * 10
    reports = GateSets("main", _report("main", win, lose), {"safety": _report("safety", win, win)})
    candidate = ModelRecord(model_id="ft:x", provider="local", base_model="b", job_id="ftjob-9")
    production = ModelRecord(model_id="b", provider="local", base_model="b")

    decision = promotion_decision(
        reports, candidate, production, SETTINGS, dataset_version="ds-9", run_id="retrain-2026-11-09"
    )

    assert decision.promote and decision.reason.startswith("ft:x beats b")
    assert (decision.job_id, decision.dataset_version) == ("ftjob-9", "ds-9")
    assert decision.run_id == "retrain-2026-11-09"
    assert decision.candidate.eval_run == "retrain-2026-11-09"
    assert decision.candidate.scores == {"main": 0.75}
    assert decision.production == production
    assert "| guardrail:safety | pass |" in decision.report_markdown
    assert promotion_key(decision) == "promote:ft:x"


def test_the_runs_of_the_gate_sets_are_named_for_the_run() -> None:
    nightly = gate_runs("retrain-1", "main", ["safety"], main_run="retrain-1")
    assert (nightly.main, nightly.guardrails) == ("retrain-1", {"safety": "retrain-1-safety"})
    assert nightly.by_set() == {"main": "retrain-1", "safety": "retrain-1-safety"}
    compare = gate_runs("compare-1", "main", ["main", "safety"])
    assert (compare.main, compare.guardrails) == ("compare-1-main", {"safety": "compare-1-safety"})
    assert GateSets.split({"main": 1, "safety": 2}, "main") == GateSets("main", 1, {"safety": 2})


def test_an_approval_keeps_the_promotion_and_says_who() -> None:
    approval = answered(True, "  alice ", "looked at it")
    decision = reviewed(_decision(), approval)
    assert decision.promote and decision.reason == "x beats y; approved by alice"
    assert decision.approval == approval and approval.via == "Prefect UI (flow run input)"
    assert decision.report_markdown.startswith("## md\n\n## Approval: approved\n")
    row = f"| alice | Prefect UI (flow run input) | {approval.at} | looked at it |"
    assert row in decision.report_markdown


@pytest.mark.parametrize(
    ("approval", "reason"),
    [
        (timed_out(2), "rejected by timeout (no answer in 2 s); the gate said x beats y"),
        (answered(False, "", ""), "rejected by unnamed (no note); the gate said x beats y"),
    ],
)
def test_a_rejection_or_no_answer_holds_the_candidate(approval: Any, reason: str) -> None:
    decision = reviewed(_decision(), approval)
    assert not decision.promote and decision.reason == reason
    assert "## Approval: rejected" in decision.report_markdown


def test_a_candidate_the_gate_held_is_recorded_as_not_asked() -> None:
    held = _decision(promote=False)
    decision = reviewed(held, not_asked())
    assert decision.approval is not None and decision.approval.who == "not asked by gate"
    assert decision.model_dump(exclude={"approval"}) == held.model_dump(exclude={"approval"})


def test_the_question_names_the_candidate_and_the_timeout() -> None:
    question = approval_question(_decision(), 300)
    assert question.startswith("# Approve promotion of `ft:x`?\n\nNo answer within 300 s rejects.")
    assert question.endswith("## md\n")


def test_the_promotion_artifact_shows_the_alias_before_and_after() -> None:
    decision = _decision()
    stayed = Promotion(decision, None, None, None)
    assert not stayed.moved and stayed.summary() == "production stays unset (base model)"
    assert stayed.to_markdown().endswith("| before | `-` |\n| after | `-` |")
