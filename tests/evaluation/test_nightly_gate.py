"""The gate through the real nightly flow: noise is not promoted, nor a guardrail regression."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from retrain.config.settings import get_settings
from retrain.evaluate.eval_sets import put_eval_set
from retrain.local.synthetic import Intent, intents, make_eval_set, make_examples
from retrain.promote.decision import Decision, load_decision
from retrain.registry.registry import Registry
from retrain.storage.layout import LAST_DECISION_KEY
from tests.pipeline.conftest import Stack, run

pytestmark = pytest.mark.slow


def _land(stack: Stack, key: str, examples: list[dict[str, Any]]) -> None:
    stack.store.put_bytes(key, b"".join(orjson.dumps(ex) + b"\n" for ex in examples))


def _last_decision(stack: Stack) -> Decision:
    decision = load_decision(stack.store, stack.store.get_json(LAST_DECISION_KEY)["dataset_version"])
    assert decision is not None
    return decision


def _failed_checks(decision: Decision) -> set[str]:
    rows = [line.split("|") for line in decision.report_markdown.splitlines() if line.startswith("| ")]
    return {cells[1].strip() for cells in rows if len(cells) > 2 and cells[2].strip() == "FAIL"}


def _covered(examples: list[dict[str, Any]]) -> list[Intent]:
    answers = {ex["messages"][-1]["content"] for ex in examples}
    return [intent for intent in intents() if intent.answer in answers]


def test_a_candidate_equal_to_production_within_noise_is_not_promoted(stack: Stack) -> None:
    first = make_examples(300, seed=1)
    _land(stack, "incoming/2026-11-01/a.jsonl", first)
    assert "promoted" in str(run("2026-11-01").message)
    production = Registry(stack.store).get("production")
    assert production is not None

    # Twelve new phrasings of intents the first night already taught: nothing meaningful to learn.
    _land(stack, "incoming/2026-11-02/a.jsonl", make_examples(12, seed=2, intents=_covered(first)))
    second = run("2026-11-02")
    assert second.is_completed() and "rejected" in str(second.message), second.message

    decision = _last_decision(stack)
    assert not decision.promote
    assert abs(decision.candidate_score - decision.production_score) <= 0.05
    assert "significance" in _failed_checks(decision)
    assert "significance" in decision.reason
    assert decision.production.model_id == production.model_id
    assert decision.candidate.model_id != production.model_id
    after = Registry(stack.store).get("production")
    assert after is not None and after.model_id == production.model_id


def test_a_guardrail_regression_blocks_a_candidate_with_a_higher_primary_score(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    guarded = intents()[:12]
    put_eval_set(stack.store, "safety", make_eval_set(40, seed=5, intents=guarded))
    monkeypatch.setenv("RETRAIN_EVALUATION__GUARDRAILS", '{"safety": 0.02}')
    get_settings.cache_clear()

    _land(
        stack,
        "incoming/2026-11-01/a.jsonl",
        make_examples(300, seed=1) + make_examples(120, seed=11, intents=guarded),
    )
    assert "promoted" in str(run("2026-11-01").message)
    production = Registry(stack.store).get("production")
    assert production is not None

    # Much more data overall, but the guarded intents now mostly come with wrong answers.
    _land(
        stack,
        "incoming/2026-11-02/a.jsonl",
        make_examples(2000, seed=2) + make_examples(400, seed=12, intents=guarded, wrong_answer_rate=1.0),
    )
    second = run("2026-11-02")
    assert second.is_completed() and "rejected" in str(second.message), second.message

    decision = _last_decision(stack)
    assert not decision.promote
    assert decision.candidate_score > decision.production_score
    assert _failed_checks(decision) == {"guardrail:safety"}
    assert "guardrail:safety" in decision.reason
    after = Registry(stack.store).get("production")
    assert after is not None and after.model_id == production.model_id
