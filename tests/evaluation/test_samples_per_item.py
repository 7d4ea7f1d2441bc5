"""Several sampled answers an item (RETRAIN_EVALUATION__SAMPLES_PER_ITEM): each answer is asked with
its own seed at the sampling temperature and cached on its own, an item scores the share of its
answers that pass, and the gate then decides on those graded scores (its paired bootstrap)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from local_openai import serve_in_thread
from openai import OpenAI

from retrain.config.services import ProviderSettings
from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.answer_cache import cache_prefix
from retrain.evaluate.eval_sets import put_eval_set
from retrain.evaluate.request_params import request_params
from retrain.evaluate.runner import run_evaluation
from retrain.evaluate.spend import estimate_evaluation_cost
from retrain.evaluate.targets import ModelTarget
from retrain.local.synthetic import make_eval_set
from retrain.promote.gate import decide_reports
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.storage.object_store import ObjectStore
from tests.evaluation.support import BASE, fine_tune
from tests.s3_servers import moto_server

pytestmark = pytest.mark.slow

SAMPLED = EvaluationSettings(samples_per_item=3, sampling_temperature=1.5, bootstrap_resamples=1000)


@pytest.fixture
def env(tmp_path: Any) -> Iterator[tuple[ObjectStore, ProviderSettings, str, str]]:
    with moto_server() as s3, serve_in_thread(tmp_path / "openai") as api:
        tuned = fine_tune(OpenAI(base_url=api.base_url, api_key="sk-local-not-a-secret", max_retries=0))
        yield ObjectStore.from_settings(s3), ProviderSettings(base_url=api.base_url), api.root_url, tuned


def chats(root_url: str) -> dict[str, int]:
    return dict(httpx.get(f"{root_url}/admin/stats", timeout=10).json()["chat_completions_by_model"])


def test_each_item_is_asked_three_times_and_scores_the_share_that_pass(
    env: tuple[ObjectStore, ProviderSettings, str, str],
) -> None:
    store, provider, root, tuned = env
    items = put_eval_set(store, "main", make_eval_set(60, seed=5))
    targets = [ModelTarget(CANDIDATE, tuned, provider), ModelTarget(PRODUCTION, BASE, provider)]
    report = run_evaluation(store, targets, items, SAMPLED, run_id="sampled-1")

    assert chats(root) == {tuned: 180, BASE: 180}  # 3 answers x 60 items, each model
    scores = report.models[CANDIDATE].scores
    assert set(scores) <= {0.0, 1 / 3, 2 / 3, 1.0}
    assert any(0 < s < 1 for s in scores), "at temperature 1.5 some items get both right and wrong answers"
    results = [r for r in report.results[CANDIDATE] if 0 < r.grade.score < 1]
    assert results and " of 3 sampled answers passed" in results[0].grade.explanation
    assert report.usage[tuned]["requests"] == 180

    # Each answer has its own seed and cache key; the first keeps the key it had with one answer.
    assert [request_params(SAMPLED, tuned, s)["seed"] for s in range(3)] == [7, 8, 9]
    assert {request_params(SAMPLED, tuned, s)["temperature"] for s in range(3)} == {1.5}
    keys = [info.key for info in store.list(cache_prefix(tuned, SAMPLED))]
    assert len(keys) == 180 and sum(key.endswith(".s1.json") for key in keys) == 60

    gate = decide_reports(report, {}, SAMPLED)
    assert "bootstrap" in gate.method and gate.promote, gate.reason

    again = run_evaluation(store, targets, items, SAMPLED, run_id="sampled-2")
    assert chats(root) == {tuned: 180, BASE: 180}  # every answer came from the cache
    assert again.models[CANDIDATE].scores == scores

    one = estimate_evaluation_cost(items, [tuned], SAMPLED.model_copy(update={"samples_per_item": 1}))
    three = estimate_evaluation_cost(items, [tuned], SAMPLED)
    assert three.input_tokens == 3 * one.input_tokens and three.output_tokens == 3 * one.output_tokens
