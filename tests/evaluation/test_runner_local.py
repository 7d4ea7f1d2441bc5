"""The runner and the gate end to end: the local OpenAI-compatible server and moto's S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from botocore.exceptions import ConnectionClosedError
from local_openai import FALLBACK_REPLY, serve_in_thread
from openai import OpenAI

from retrain.config.services import ProviderSettings, S3Settings
from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.answer_cache import cache_prefix
from retrain.evaluate.eval_sets import EvalSet, put_eval_set
from retrain.evaluate.runner import run_evaluation
from retrain.evaluate.targets import ModelTarget
from retrain.exceptions import EvaluationError
from retrain.local.synthetic import make_eval_set
from retrain.promote.gate import decide, decide_reports
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.storage.object_store import ObjectStore, make_s3_client
from tests.evaluation.support import BASE, fine_tune
from tests.s3_servers import moto_server

pytestmark = pytest.mark.slow

OTHER_BASE = "gpt-4.1-nano-2025-04-14"
RESUME_MODELS = ("gpt-4.1-2025-04-14", "gpt-3.5-turbo-0125")
SETTINGS = EvaluationSettings(concurrency=8, max_retries=6, bootstrap_resamples=1000)


@dataclass
class Env:
    store: ObjectStore
    s3: S3Settings
    provider: ProviderSettings
    root_url: str
    tuned: str

    def target(self, label: str, model_id: str) -> ModelTarget:
        return ModelTarget(label=label, model_id=model_id, provider=self.provider)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with moto_server() as s3, serve_in_thread(tmp_path_factory.mktemp("openai")) as api:
        provider = ProviderSettings(base_url=api.base_url)
        tuned = fine_tune(OpenAI(base_url=api.base_url, api_key="sk-local-not-a-secret", max_retries=0))
        yield Env(ObjectStore.from_settings(s3), s3, provider, api.root_url, tuned)


def stats(root_url: str) -> dict[str, Any]:
    response = httpx.get(f"{root_url}/admin/stats", timeout=10)
    response.raise_for_status()
    return dict(response.json())


def eval_set(env: Env, name: str, n: int, seed: int, **extra: Any) -> EvalSet:
    return put_eval_set(env.store, name, [{**item, **extra} for item in make_eval_set(n, seed=seed)])


def test_fine_tuned_model_is_promoted_over_its_base(env: Env) -> None:
    main = eval_set(env, "main", 80, seed=5)
    progress: list[tuple[int, int]] = []
    report = run_evaluation(
        env.store,
        [env.target(CANDIDATE, env.tuned), env.target(PRODUCTION, BASE)],
        main,
        SETTINGS,
        run_id="promote-1",
        progress=lambda done, total: progress.append((done, total)),
    )
    assert progress[-1] == (160, 160)
    assert [p[0] for p in progress] == list(range(1, 161))
    candidate, production = report.models[CANDIDATE], report.models[PRODUCTION]
    assert production.mean == 0.0
    assert all(r.output == FALLBACK_REPLY for r in report.results[PRODUCTION])
    assert candidate.mean > 0.3
    assert all(r.usage and r.usage["total_tokens"] > 0 for r in report.results[CANDIDATE])

    decision = decide(candidate, production, SETTINGS)
    assert decision.promote, decision.reason
    assert decision.method.startswith("exact McNemar")

    lines = list(env.store.iter_lines("evals/promote-1/candidate.jsonl"))
    assert len(lines) == 80
    first = orjson.loads(lines[0])
    assert {"item_id", "output", "score", "passed", "explanation", "latency_s", "usage", "cached"} <= set(
        first
    )
    summary = env.store.get_json("evals/promote-1/summary.json")
    assert summary["eval_version"] == main.version
    assert summary["models"][CANDIDATE]["mean"] == pytest.approx(candidate.mean)
    params = {"temperature": 0, "seed": SETTINGS.seed, "max_tokens": SETTINGS.max_tokens}
    assert summary["params"] == {CANDIDATE: params, PRODUCTION: params}


def test_a_model_is_never_promoted_over_itself(env: Env) -> None:
    main = eval_set(env, "main", 80, seed=5)
    report = run_evaluation(
        env.store,
        [env.target(CANDIDATE, env.tuned), env.target(PRODUCTION, env.tuned)],
        main,
        SETTINGS,
        run_id="self-1",
    )
    decision = decide_reports(report, {}, SETTINGS)
    assert not decision.promote
    assert report.models[CANDIDATE].scores == report.models[PRODUCTION].scores
    assert decision.p_value == 1.0


def test_a_guardrail_regression_blocks_a_better_primary(env: Env) -> None:
    settings = SETTINGS.model_copy(update={"guardrails": {"declines": 0.02}})
    targets = [env.target(CANDIDATE, env.tuned), env.target(PRODUCTION, BASE)]
    main = eval_set(env, "main", 80, seed=5)
    declines = put_eval_set(
        env.store,
        "declines",
        [
            {"messages": [*item["messages"][:-1], {"role": "assistant", "content": FALLBACK_REPLY}]}
            for item in make_eval_set(40, seed=11)
        ],
    )
    reports = {
        "main": run_evaluation(env.store, targets, main, settings, run_id="guard-main"),
        "declines": run_evaluation(env.store, targets, declines, settings, run_id="guard-declines"),
    }
    assert reports["main"].models[CANDIDATE].mean > reports["main"].models[PRODUCTION].mean
    decision = decide_reports(reports["main"], {"declines": reports["declines"]}, settings)
    assert not decision.promote
    assert [c.name for c in decision.checks if not c.passed] == ["guardrail:declines"]
    assert "guardrail:declines | FAIL" in decision.to_markdown()


class Crash(Exception):
    pass


def test_a_rerun_after_a_crash_asks_only_for_missing_answers(env: Env, tmp_path: Path) -> None:
    items = eval_set(env, "resume", 60, seed=21)
    targets = [env.target(CANDIDATE, RESUME_MODELS[0]), env.target(PRODUCTION, RESUME_MODELS[1])]

    def crash_at_50(done: int, total: int) -> None:
        if done == 50:
            raise Crash

    with pytest.raises(Crash):
        run_evaluation(env.store, targets, items, SETTINGS, run_id="resume-1", progress=crash_at_50)
    cached = {t.label: len(list(env.store.list(cache_prefix(t.model_id, SETTINGS)))) for t in targets}
    assert 50 <= sum(cached.values()) < 120
    assert not env.store.exists("evals/resume-1/summary.json")

    # A fresh server for the re-run: its counters hold exactly what the re-run asked.
    with serve_in_thread(tmp_path / "fresh") as fresh:
        provider = ProviderSettings(base_url=fresh.base_url)
        retargets = [ModelTarget(t.label, t.model_id, provider) for t in targets]
        report = run_evaluation(env.store, retargets, items, SETTINGS, run_id="resume-2")
        asked = stats(fresh.root_url)["chat_completions_by_model"]
        assert asked.get(RESUME_MODELS[0], 0) == 60 - cached[CANDIDATE]
        assert asked.get(RESUME_MODELS[1], 0) == 60 - cached[PRODUCTION]
        assert sum(r.cached for r in report.results[CANDIDATE]) == cached[CANDIDATE]
        assert all(r.output == FALLBACK_REPLY and r.error is None for r in report.results[CANDIDATE])

        again = run_evaluation(env.store, retargets, items, SETTINGS, run_id="resume-3")
        assert stats(fresh.root_url)["chat_completions_by_model"] == asked
        assert all(r.cached for rs in again.results.values() for r in rs)


def test_s3_losing_cached_answers_costs_re_asks_not_the_run(env: Env, tmp_path: Path) -> None:
    """S3 applies every 3rd cache write but the response is lost, and every 4th cache read fails."""
    items = eval_set(env, "lossy", 30, seed=61)
    model = RESUME_MODELS[0]
    prefix = cache_prefix(model, SETTINGS)
    client = make_s3_client(env.s3)
    calls = {"PutObject": 0, "GetObject": 0}
    failed = {"PutObject": 0, "GetObject": 0}

    def lose(http_response: Any, model: Any, **_: object) -> None:
        if prefix not in str(http_response.url):
            return
        calls[model.name] += 1
        if calls[model.name] % (3 if model.name == "PutObject" else 4) == 0:
            failed[model.name] += 1
            raise ConnectionClosedError(endpoint_url=str(http_response.url))

    client.meta.events.register("after-call.s3.PutObject", lose)
    client.meta.events.register("after-call.s3.GetObject", lose)
    lossy = ObjectStore(client, env.s3.bucket, env.s3.prefix)
    with serve_in_thread(tmp_path / "fresh") as fresh:
        targets = [ModelTarget(CANDIDATE, model, ProviderSettings(base_url=fresh.base_url))]
        first = run_evaluation(lossy, targets, items, SETTINGS, run_id="lossy-1")
        assert first.models[CANDIDATE].errors == 0 and len(first.results[CANDIDATE]) == 30
        assert failed["PutObject"] == 10
        assert stats(fresh.root_url)["chat_completions_by_model"][model] == 30

        # The 10 lost writes did reach S3, but this run did not know it: they are read, not asked.
        second = run_evaluation(lossy, targets, items, SETTINGS, run_id="lossy-2")
        assert failed["GetObject"] == 7  # of 30 reads
        assert sum(r.cached for r in second.results[CANDIDATE]) == 23
        assert stats(fresh.root_url)["chat_completions_by_model"][model] == 37
        assert [r.output for r in second.results[CANDIDATE]] == [r.output for r in first.results[CANDIDATE]]


def test_rate_limits_are_retried_and_persistent_failures_fail_the_run(env: Env) -> None:
    items = eval_set(env, "flaky", 40, seed=31)
    faults = {"rules": [{"route": "chat", "kind": "429", "rate": 0.3, "retry_after": 0.01}]}
    httpx.post(f"{env.root_url}/admin/faults", json=faults, timeout=10).raise_for_status()
    try:
        report = run_evaluation(
            env.store, [env.target(CANDIDATE, OTHER_BASE)], items, SETTINGS, run_id="flaky-1"
        )
        assert report.models[CANDIDATE].errors == 0
        assert stats(env.root_url)["faults_injected"]["429"] > 0

        down = {"rules": [{"route": "chat", "kind": "500", "rate": 1.0}]}
        httpx.post(f"{env.root_url}/admin/faults", json=down, timeout=10).raise_for_status()
        fragile = SETTINGS.model_copy(update={"max_retries": 1})
        other = eval_set(env, "down", 10, seed=41)
        with pytest.raises(EvaluationError, match=r"10 of 10 answers of candidate .* failed"):
            run_evaluation(env.store, [env.target(CANDIDATE, OTHER_BASE)], other, fragile, run_id="down-1")
        results = list(env.store.iter_lines("evals/down-1/candidate.jsonl"))
        assert len(results) == 10
        assert all(orjson.loads(line)["error"] for line in results)
        prefix = cache_prefix(OTHER_BASE, fragile)
        assert not any(env.store.exists(f"{prefix}{item.item_hash}.json") for item in other.items)
    finally:
        httpx.delete(f"{env.root_url}/admin/faults", timeout=10).raise_for_status()


def test_an_unknown_model_fails_at_once_with_its_name(env: Env) -> None:
    items = eval_set(env, "tiny", 3, seed=51)
    with pytest.raises(EvaluationError, match=r"'ft:no-such-model' .* is not served"):
        run_evaluation(env.store, [env.target(CANDIDATE, "ft:no-such-model")], items, SETTINGS, run_id="nf")
