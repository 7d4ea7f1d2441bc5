"""The night summary, comparisons in words, charts and score history, without a Prefect server."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.graders import Grade
from retrain.evaluate.results import EvalReport, ItemResult, ModelScores
from retrain.ingest.batches import IngestReport, ObjectManifest
from retrain.promote.comparison import GateSets
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.registry.records import ModelRecord
from retrain.registry.registry import Registry
from retrain.report import (
    NightFacts,
    Tonight,
    compare,
    comparison_markdown,
    loss_curve,
    night_summary_markdown,
    score_history_of,
)
from retrain.storage.object_store import ObjectStore
from retrain.train.result import LossPoint, TrainingResult


def _results(passes: list[bool], prefix: str) -> list[ItemResult]:
    return [
        ItemResult(f"q{i}", f"{prefix} answer {i}", Grade(float(p), p, ""), 0.1, None, None, False)
        for i, p in enumerate(passes)
    ]


def _report(candidate: list[bool], production: list[bool]) -> EvalReport:
    results = {CANDIDATE: _results(candidate, "cand"), PRODUCTION: _results(production, "prod")}
    models = {
        CANDIDATE: ModelScores.from_results(CANDIDATE, "ft:cand-model", "main", results[CANDIDATE]),
        PRODUCTION: ModelScores.from_results(PRODUCTION, "ft:prod-model", "main", results[PRODUCTION]),
    }
    return EvalReport("retrain-2026-12-01", "main", "v1", models, results)


def test_comparison_names_both_models_in_their_roles_and_explains_the_test() -> None:
    # 1 item only the candidate passes, 9 only production passes, 10 both
    report = _report([True] * 11 + [False] * 9, [False] + [True] * 19)
    comparison = compare(report, EvaluationSettings())
    assert (comparison.candidate_model, comparison.production_model) == ("ft:cand-model", "ft:prod-model")
    assert (comparison.total_only_candidate, comparison.total_only_production) == (1, 9)
    markdown = comparison_markdown(comparison)
    assert "- candidate `ft:cand-model`: **0.550**" in markdown
    assert "- production `ft:prod-model`: **0.950**" in markdown
    assert (
        "exact McNemar test on 10 discordant items: 1 passed only by the candidate, 9 only by production"
        in markdown
    )
    assert "no evidence that the candidate is better" in markdown
    assert "| `q11` | cand answer 11 | prod answer 11 |" in markdown  # production passed, candidate failed
    assert "(3 of 9)" in markdown
    assert "| grader |" not in markdown  # one grader: no table repeating it as 'all'


def test_a_clear_improvement_is_described_as_unlikely_by_chance() -> None:
    report = _report([True] * 40, [True] * 10 + [False] * 30)
    words = comparison_markdown(compare(report, EvaluationSettings()))
    assert "less than once in 1,000" in words


def test_loss_curve_is_an_svg_data_uri() -> None:
    uri = loss_curve([LossPoint(1, 2.0, 2.1), LossPoint(2, 1.5), LossPoint(3, 1.1, 1.3)])
    prefix = "data:image/svg+xml;base64,"
    assert uri.startswith(prefix)
    svg = base64.b64decode(uri.removeprefix(prefix))
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    assert b"<image" not in svg and b'href="http' not in svg  # nothing for the UI to fetch


def _batch() -> IngestReport:
    return IngestReport(
        batch_id="b-1",
        run_id="retrain-2026-12-01",
        objects=[ObjectManifest("incoming/2026-12-01/app.jsonl", "e", 10, 12, 9, 3, "retrain-2026-12-01")],
        lines_read=12,
        accepted=9,
        quarantined=3,
        by_reason={"too_many_tokens": 2, "invalid_json": 1},
        gates=[],
        passed=True,
        quarantine_key="quarantine/retrain-2026-12-01/b-1.jsonl",
        version_id="v-1",
        cost_estimate_usd=0.1,
    )


def _facts(candidate: list[bool], production: list[bool], **tonight: object) -> NightFacts:
    report = _report(candidate, production)
    settings = EvaluationSettings()
    prod = ModelRecord(model_id="ft:prod-model", provider="openai", base_model="gpt-4o-mini")
    night = Tonight(
        "retrain-2026-12-01",
        batch=_batch(),
        training=TrainingResult(
            job_id="ftjob-1",
            status="succeeded",
            base_model="gpt-4o-mini",
            provider="openai",
            backend="openai_api",
            resumed=False,
            model_id="ft:cand-model",
            loss=[LossPoint(1, 2.0), LossPoint(2, 1.0)],
        ),
        estimated_usd=0.12,
        production=prod,
        reports=GateSets("main", report, {}),
        **tonight,  # type: ignore[arg-type]
    )
    quarantined = [
        {
            "source": "incoming/2026-12-01/app.jsonl",
            "line_no": 4,
            "reasons": [{"code": "too_many_tokens", "message": "5000 tokens, limit 4096"}],
            "raw": '{"messages": []}',
        }
    ]
    return NightFacts.of(
        night, "Rejected", "candidate rejected", settings, quarantined=quarantined, production_now=prod
    )


def test_night_summary_answers_every_question_on_one_page() -> None:
    page = night_summary_markdown(_facts([True] * 5 + [False] * 15, [True] * 18 + [False] * 2))
    sections = [
        "# retrain-2026-12-01: Rejected",
        "## What came in",
        "## What was trained",
        "## How the candidate compared with production",
        "## Production now",
        "## More",
    ]
    positions = [page.index(s) for s in sections]
    assert positions == sorted(positions)
    assert "**12** lines read = **9** accepted + **3** quarantined" in page
    assert "| `too_many_tokens` | 2 |" in page
    assert "too_many_tokens: 5000 tokens, limit 4096" in page
    assert "job `ftjob-1` on provider `openai`: **succeeded**, $0.12 estimated" in page
    assert "![loss curve](data:image/svg+xml;base64," in page
    assert "- candidate `ft:cand-model`: **0.250**" in page
    assert "`production` points to `ft:prod-model` (provider `openai`)." in page
    assert "moved from" not in page
    assert "- `retrain batches show b-1`" in page and "- `retrain jobs show ftjob-1`" in page


def test_night_summary_says_why_the_gate_rejected() -> None:
    facts = _facts([True] * 5 + [False] * 15, [True] * 18 + [False] * 2)
    assert any(check.startswith("significance") for check in facts.failed_checks), facts.failed_checks


def test_score_history_follows_promotions_rejections_and_rollbacks(moto_store: ObjectStore) -> None:
    start = datetime(2026, 12, 1, 3, tzinfo=UTC)

    def decide(night: int, promote: bool, cand: float, prod: float) -> None:
        run = f"retrain-2026-12-0{night}"
        record = {
            "dataset_version": f"v{night}",
            "run_id": run,
            "job_id": f"j{night}",
            "candidate": {"model_id": f"m{night}"},
            "production": {"model_id": "base"},
            "promote": promote,
            "reason": "r",
            "candidate_score": cand,
            "production_score": prod,
            "report_markdown": "",
            "decided_at": (start + timedelta(days=night)).isoformat(),
            "approval": None,
        }
        moto_store.put_json(f"state/decisions/v{night}.json", record)
        moto_store.put_json("state/decisions/LAST.json", {"dataset_version": f"v{night}"})
        moto_store.put_json(
            f"evals/{run}-safety/summary.json",
            {"models": {CANDIDATE: {"mean": cand / 2}, PRODUCTION: {"mean": prod / 2}}},
        )

    decide(1, True, 0.6, 0.2)
    decide(2, False, 0.4, 0.6)
    registry = Registry(moto_store)
    first = ModelRecord(model_id="m1", provider="openai", base_model="b", scores={"main": 0.6})
    registry.set(PRODUCTION, first, actor="t", reason="r")
    registry.set(
        PRODUCTION, ModelRecord(model_id="m3", provider="openai", base_model="b"), actor="t", reason="r"
    )
    registry.rollback(PRODUCTION, steps=1, actor="t", reason="back")

    main = score_history_of(moto_store, "main", primary="main")
    assert [(p.night, p.score, p.event, p.model_id) for p in main] == [
        ("2026-12-01", 0.6, "promoted", "m1"),
        ("2026-12-02", 0.6, "rejected", "base"),
        (f"{datetime.now(UTC):%Y-%m-%d}", 0.6, "rolled back", "m1"),
    ]
    safety = score_history_of(moto_store, "safety", primary="main")
    assert [(p.score, p.event) for p in safety] == [(0.3, "promoted"), (0.3, "rejected")]
