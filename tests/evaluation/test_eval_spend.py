"""Evaluation spend: estimated before a night's evaluation, refused above the limit, counted from
the answers' usage after, and shown by `retrain spend`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from retrain.cli.main import app
from retrain.config.settings import get_settings
from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.eval_sets import EvalItem, EvalSet, prompt_hash
from retrain.evaluate.results import EvalReport
from retrain.evaluate.runner import run_evaluation
from retrain.evaluate.spend import (
    EvalCost,
    check_evaluation_cost,
    counted_cost,
    estimate_evaluation_cost,
    price_of,
)
from retrain.exceptions import BudgetExceeded, TooManyItemErrors
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.storage.layout import EVALS_PREFIX
from retrain.train.budget import count_evaluation, month_evaluations
from tests.evaluation.test_runner_local import Env, env  # noqa: F401  (the module-scoped servers)
from tests.pipeline.conftest import Stack, run
from tests.pipeline.test_nightly_flow import land

TUNED = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
SETTINGS = EvaluationSettings(max_tokens=64)


def _set(n: int, grader: str = "exact_match", *, topic: str = "item") -> EvalSet:
    """``n`` items; tests that share the answer cache ask about different ``topic``s."""
    prompts = [
        [{"role": "user", "content": f"What is {topic} number {i}? Answer in one line."}] for i in range(n)
    ]
    items = [
        EvalItem(
            id=f"i{i}",
            prompt_messages=prompt,
            reference=f"Item {i} is the {i}th thing in the catalogue.",
            grader=grader,
            item_hash=prompt_hash(prompt),
        )
        for i, prompt in enumerate(prompts)
    ]
    return EvalSet("main", "v1", items)


def test_fine_tuned_models_are_priced_by_their_family_and_unknown_models_are_named_at_zero() -> None:
    assert price_of(TUNED, SETTINGS) == (0.30, 1.20)
    assert price_of("gpt-4.1-nano-2025-04-14", SETTINGS) == (0.20, 0.80)
    one = estimate_evaluation_cost(_set(10), [TUNED], SETTINGS)
    assert one.input_tokens > 10 * 10 and one.output_tokens > 10 * 5
    assert one.usd == pytest.approx((one.input_tokens * 0.30 + one.output_tokens * 1.20) / 1e6)
    own = estimate_evaluation_cost(_set(10), [TUNED, "smollm2-135m-retrain-ds1"], SETTINGS)
    assert own.input_tokens == 2 * one.input_tokens and own.usd == one.usd  # the own model costs $0
    assert own.unpriced == ["smollm2-135m-retrain-ds1"] and "no price for smollm2" in own.line


def test_a_judge_graded_set_adds_a_judge_call_per_item_and_model() -> None:
    judged = SETTINGS.model_copy(update={"judge_model": "gpt-4.1-2025-04-14"})
    plain = estimate_evaluation_cost(_set(8), [TUNED, TUNED], judged)
    graded = estimate_evaluation_cost(_set(8, grader="model_graded"), [TUNED, TUNED], judged)
    assert graded.output_tokens == plain.output_tokens + 2 * 8 * 64
    assert graded.input_tokens > plain.input_tokens + 2 * 8 * 100  # the rubric alone is longer
    assert graded.usd > plain.usd


def test_answers_are_counted_from_their_usage_at_each_models_price() -> None:
    usage = {
        TUNED: {"prompt_tokens": 1_000_000, "completion_tokens": 500_000, "requests": 10},
        "gpt-4o-2024-08-06": {"prompt_tokens": 200_000, "completion_tokens": 0, "requests": 2},
    }
    cost = counted_cost(usage, SETTINGS)
    assert (cost.input_tokens, cost.output_tokens) == (1_200_000, 500_000)
    assert cost.usd == pytest.approx(0.30 + 0.60 + 0.75)


def test_a_night_above_the_evaluation_limit_is_refused_in_one_line() -> None:
    limited = SETTINGS.model_copy(update={"max_eval_cost_usd": 1.0})
    assert check_evaluation_cost([EvalCost(usd=0.4), EvalCost(usd=0.5)], limited).usd == pytest.approx(0.9)
    with pytest.raises(BudgetExceeded) as refused:
        check_evaluation_cost([EvalCost(10, 10, usd=0.6), EvalCost(10, 10, usd=0.5)], limited)
    message = str(refused.value)
    assert message.startswith("tonight's evaluation is estimated at $1.10 (20 tokens in, 20 out)")
    assert "RETRAIN_EVALUATION__MAX_EVAL_COST_USD" in message and "\n" not in message


@pytest.mark.slow
def test_only_answers_the_provider_sent_are_counted_and_a_cached_rerun_costs_nothing(env: Env) -> None:  # noqa: F811
    targets = [env.target(CANDIDATE, env.tuned), env.target(PRODUCTION, "gpt-4o-mini-2024-07-18")]
    first = run_evaluation(env.store, targets, _set(12), SETTINGS, run_id="spend-1")
    assert set(first.usage) == {env.tuned, "gpt-4o-mini-2024-07-18"}
    assert all(u["requests"] == 12 and u["prompt_tokens"] > 0 for u in first.usage.values()), first.usage
    assert counted_cost(first.usage, SETTINGS).usd > 0
    again = run_evaluation(env.store, targets, _set(12), SETTINGS, run_id="spend-2")
    assert again.usage == {} and counted_cost(again.usage, SETTINGS).usd == 0


@pytest.mark.slow
def test_a_nights_evaluation_is_estimated_refused_above_the_limit_counted_and_shown_by_spend(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1)
    monkeypatch.setenv("RETRAIN_EVALUATION__MAX_EVAL_COST_USD", "0.000001")
    get_settings.cache_clear()
    refused = run("2026-11-01")
    assert refused.is_failed() and "above max_eval_cost_usd $0.00" in refused.message, refused.message
    assert not [i.key for i in stack.store.list(EVALS_PREFIX)]  # nothing was asked

    monkeypatch.delenv("RETRAIN_EVALUATION__MAX_EVAL_COST_USD")
    get_settings.cache_clear()
    state = run("2026-11-01")  # the same trained candidate, evaluated this time
    assert state.is_completed(), state.message
    month = f"{datetime.now(UTC):%Y-%m}"
    evaluations = month_evaluations(stack.store, month)
    counted = [e for e in evaluations.values() if e["billed"]]
    assert counted and all(e["estimated"]["usd"] > 0 and e["counted"]["input_tokens"] > 0 for e in counted)

    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["spend"])
    assert shown.exit_code == 0, shown.output
    assert "Evaluation spend" in shown.output and "retrain-2026-11-01" in shown.output
    assert " evaluation) " in shown.output.splitlines()[-1]
    as_json = json.loads(CliRunner().invoke(app, ["spend", "--json"]).output)
    assert as_json["evaluation_usd"] > 0
    assert as_json["spend_usd"] == pytest.approx(as_json["training_usd"] + as_json["evaluation_usd"])


@pytest.mark.slow
def test_an_attempt_that_fails_with_too_many_errors_is_counted_and_its_retry_adds_only_new_answers(
    env: Env,  # noqa: F811
) -> None:
    import httpx

    seen: list[EvalReport] = []
    targets = [env.target(CANDIDATE, env.tuned)]
    flaky = {"rules": [{"route": "chat", "kind": "500", "rate": 0.5}]}
    httpx.post(f"{env.root_url}/admin/faults", json=flaky, timeout=10).raise_for_status()
    fragile = SETTINGS.model_copy(update={"max_retries": 0, "max_error_rate": 0.0})
    flaky_set = _set(30, topic="flaky case")  # prompts no other test left in the answer cache
    try:
        with pytest.raises(TooManyItemErrors):
            run_evaluation(
                env.store, targets, flaky_set, fragile, run_id="spend-flaky", on_report=seen.append
            )
    finally:
        httpx.delete(f"{env.root_url}/admin/faults", timeout=10).raise_for_status()
    (failed,) = seen
    answered = sum(r.output is not None for r in failed.results[CANDIDATE])
    assert 0 < answered < 30 and failed.usage[env.tuned]["requests"] == answered

    retry = run_evaluation(
        env.store, targets, flaky_set, fragile, run_id="spend-flaky", on_report=seen.append
    )
    assert retry.usage[env.tuned]["requests"] == 30 - answered  # the rest came from the cache

    today = datetime.now(UTC).date()
    for report in seen:
        count_evaluation(env.store, report, SETTINGS, today)
    entry = month_evaluations(env.store, f"{today:%Y-%m}")["spend-flaky"]
    assert entry["attempts"] == 2 and entry["billed"]
    both = counted_cost(failed.usage, SETTINGS).plus(counted_cost(retry.usage, SETTINGS))
    assert entry["counted"]["input_tokens"] == both.input_tokens and entry["counted_usd"] == both.usd
