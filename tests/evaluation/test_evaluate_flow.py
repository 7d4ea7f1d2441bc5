"""On-demand evaluation: the `evaluate` flow on the Prefect harness and `retrain eval` on the local stack."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from openai import OpenAI
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from typer.testing import CliRunner

from flows.evaluate import evaluate
from retrain.cli.main import app
from retrain.config.settings import get_settings
from retrain.evaluate.eval_sets import put_eval_set
from retrain.local.synthetic import make_eval_set
from retrain.promote.gate import GateDecision
from retrain.registry.registry import ModelRecord, Registry
from tests.evaluation.support import BASE, fine_tune
from tests.pipeline.conftest import Stack

pytestmark = pytest.mark.slow


def _point(stack: Stack, alias: str, model_id: str) -> None:
    record = ModelRecord(model_id=model_id, provider=stack.settings.provider.name, base_model=BASE)
    Registry(stack.store).set(alias, record, actor="test", reason="test setup")


def _words(output: str) -> str:
    return " ".join(output.split())


def _chat_completions(stack: Stack) -> int:
    return sum(stack.admin("GET", "/admin/stats").json()["chat_completions_by_model"].values())


def _artifacts(flow_run_id: UUID) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact.data for artifact in found if artifact.key}


def test_evaluate_flow_compares_two_aliases_with_guardrails_and_promotes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    tuned = fine_tune(OpenAI(base_url=stack.settings.provider.base_url, api_key="test", max_retries=0))
    _point(stack, "candidate", tuned)
    _point(stack, "production", BASE)
    put_eval_set(stack.store, "safety", make_eval_set(30, seed=8))
    monkeypatch.setenv("RETRAIN_EVALUATION__GUARDRAILS", '{"safety": 0.0}')
    get_settings.cache_clear()
    history_before = Registry(stack.store).history("production")

    state = evaluate(candidate="candidate", production="production", return_state=True)
    assert state.is_completed(), state.message
    decision = state.result()
    assert isinstance(decision, GateDecision)
    assert decision.candidate_model == tuned and decision.production_model == BASE
    assert decision.promote, decision.reason
    assert {check.name for check in decision.checks} >= {"significance", "guardrail:safety"}
    assert decision.candidate_score > decision.production_score

    assert state.state_details.flow_run_id is not None
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert "Promotion gate: **Promoted**" in str(artifacts["eval-decision"])
    for name, items in (("main", 120), ("safety", 30)):
        comparison = str(artifacts[f"eval-comparison-{name}"])
        assert f"# Eval set `{name}` ({items} items)" in comparison
        assert f"- candidate `{tuned}`" in comparison and f"- production `{BASE}`" in comparison
        assert "one-sided p = " in comparison and "interval" in comparison
    assert "eval-comparison" not in artifacts
    summaries = [info.key for info in stack.store.list("evals/") if info.key.endswith("summary.json")]
    assert len(summaries) == 2 and any(key.endswith("-safety/summary.json") for key in summaries)
    assert Registry(stack.store).history("production") == history_before


def test_evaluate_flow_never_promotes_a_model_over_itself(stack: Stack) -> None:
    _point(stack, "production", BASE)
    decision = evaluate(candidate="production", production=BASE)
    assert not decision.promote
    failed = {check.name for check in decision.checks if not check.passed}
    assert {"different models", "significance"} <= failed


def test_retrain_eval_cli_prints_the_comparison_and_the_gate(stack: Stack) -> None:
    tuned = fine_tune(OpenAI(base_url=stack.settings.provider.base_url, api_key="test", max_retries=0))
    runner = CliRunner()

    result = runner.invoke(app, ["eval", "--candidate", tuned, "--production", BASE])
    assert result.exit_code == 0, result.output
    assert f"Would be promoted: production would move from {BASE} to {tuned}" in _words(result.output)
    assert "significance" in result.output and "improvement" in result.output
    assert "evals/cli-" in result.output

    asked = _chat_completions(stack)
    assert asked == 2 * 120
    again = runner.invoke(app, ["eval", "--candidate", BASE, "--production", tuned, "--set", "main"])
    assert again.exit_code == 0, again.output
    assert f"Would be rejected: production stays {tuned}" in _words(again.output)
    assert _chat_completions(stack) == asked, "a second comparison of the same models re-asked them"

    old_form = runner.invoke(app, ["eval", "--model", tuned, "--model", BASE])
    assert old_form.exit_code == 2
    assert "use --candidate MODEL --production MODEL" in _words(old_form.output)

    unknown = runner.invoke(app, ["eval", "--candidate", "no-such-model", "--production", BASE])
    assert unknown.exit_code == 1
    assert "not served" in unknown.output and "Traceback" not in unknown.output


def test_retrain_eval_labels_aliases_by_the_flag_they_were_given_to(stack: Stack) -> None:
    tuned = fine_tune(OpenAI(base_url=stack.settings.provider.base_url, api_key="test", max_retries=0))
    _point(stack, "production", BASE)
    _point(stack, "candidate", tuned)
    runner = CliRunner()
    for args in (
        ["--candidate", "candidate", "--production", "production"],
        ["--production", "production", "--candidate", "candidate"],
    ):
        result = runner.invoke(app, ["eval", *args], terminal_width=80)
        assert result.exit_code == 0, result.output
        lines = [" ".join(line.split()) for line in result.output.splitlines()]
        assert f"candidate candidate = {tuned}" in lines
        assert f"production production = {BASE}" in lines
        assert f"Would be promoted: production would move from {BASE} to {tuned}" in _words(result.output)
