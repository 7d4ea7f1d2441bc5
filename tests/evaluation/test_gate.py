"""The promotion gate's statistics against hand computations, and its decisions."""

from __future__ import annotations

from math import comb

import pytest

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.results import ModelScores
from retrain.exceptions import EvaluationError
from retrain.promote.gate import decide
from retrain.promote.statistics import (
    mcnemar_exact_p,
    paired_binary_ci,
    paired_bootstrap,
    significance,
    tango_p,
)


def scores(model_id: str, values: list[float], label: str = "m", threshold: float = 0.5) -> ModelScores:
    return ModelScores(
        label=label,
        model_id=model_id,
        scores=values,
        passed=[v >= threshold for v in values],
        mean=sum(values) / len(values),
        item_ids=[f"i{n}" for n in range(len(values))],
    )


def paired(b: int, c: int, both: int, neither: int) -> tuple[list[float], list[float]]:
    """Candidate and production pass/fail scores with b, c discordant and the rest concordant."""
    cand = [1.0] * b + [0.0] * c + [1.0] * both + [0.0] * neither
    prod = [0.0] * b + [1.0] * c + [1.0] * both + [0.0] * neither
    return cand, prod


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (0, 0, 1.0),
        (1, 0, 0.5),
        (5, 0, 1 / 32),
        (4, 1, 6 / 32),  # P(X >= 4 | n=5) = (C(5,4) + C(5,5)) / 32
        (8, 2, 56 / 1024),  # (C(10,8) + C(10,9) + C(10,10)) / 1024 = (45 + 10 + 1) / 1024
        (9, 1, 11 / 1024),
        (3, 3, 42 / 64),  # (20 + 15 + 6 + 1) / 64
        (0, 4, 1.0),
    ],
)
def test_mcnemar_exact_matches_hand_computation(b: int, c: int, expected: float) -> None:
    assert mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_exact_on_large_counts_stays_finite() -> None:
    p = mcnemar_exact_p(600, 500)
    assert p == pytest.approx(sum(comb(1100, k) for k in range(600, 1101)) / 2**1100)
    assert 0.0 < p < 0.002


def test_binary_ci_is_wald_for_paired_proportions() -> None:
    cand, prod = paired(b=30, c=10, both=50, neither=10)
    low, high = paired_binary_ci([x == 1 for x in cand], [x == 1 for x in prod], alpha=0.05)
    # diff = 0.2; var = (40 - 400/100) / 100^2 = 0.0036; se = 0.06; z(0.95) = 1.6449
    assert low == pytest.approx(0.2 - 1.6448536 * 0.06, abs=1e-6)
    assert high == pytest.approx(0.2 + 1.6448536 * 0.06, abs=1e-6)


def test_bootstrap_all_equal_differences() -> None:
    p_zero, ci_zero = paired_bootstrap([0.0] * 50, resamples=500, seed=1, alpha=0.05)
    assert p_zero == 1.0
    assert ci_zero == pytest.approx((0.0, 0.0))
    p_shift, ci_shift = paired_bootstrap([0.1] * 50, resamples=500, seed=1, alpha=0.05)
    assert p_shift == pytest.approx(1 / 501)
    assert ci_shift == pytest.approx((0.1, 0.1))


def test_bootstrap_is_seeded_and_orders_evidence() -> None:
    strong = [0.3, 0.2, 0.25, 0.4, 0.1, 0.35, 0.2, 0.3, -0.05, 0.2] * 5
    weak = [0.3, -0.3, 0.2, -0.2, 0.1, -0.05, 0.05, 0.0, 0.02, -0.01] * 5
    first = paired_bootstrap(strong, resamples=2000, seed=7, alpha=0.05)
    assert first == paired_bootstrap(strong, resamples=2000, seed=7, alpha=0.05)
    assert first[0] < 0.01
    assert first[1][0] > 0
    p_weak, (low, high) = paired_bootstrap(weak, resamples=2000, seed=7, alpha=0.05)
    assert p_weak > 0.05
    assert low < 0.011 < high
    assert paired_bootstrap([-x for x in strong], resamples=200, seed=7, alpha=0.05)[0] == 1.0


def test_significance_picks_mcnemar_for_pass_fail_and_bootstrap_otherwise() -> None:
    settings = EvaluationSettings(bootstrap_resamples=1000)
    cand, prod = paired(b=8, c=2, both=40, neither=10)
    binary = significance(scores("a", cand), scores("b", prod), settings)
    assert binary.method == (
        "exact McNemar test on 10 discordant items: 8 passed only by the candidate, 2 only by production"
    )
    assert binary.p_value == pytest.approx(56 / 1024)
    graded = significance(scores("a", [0.9, 0.8, 0.7] * 10), scores("b", [0.5, 0.6, 0.7] * 10), settings)
    assert graded.method.startswith("paired bootstrap")
    assert graded.p_value < 0.01


def test_promotes_a_clearly_better_candidate() -> None:
    cand, prod = paired(b=30, c=5, both=50, neither=15)
    decision = decide(scores("ft:new", cand), scores("ft:old", prod), EvaluationSettings())
    assert decision.promote, decision.reason
    assert decision.candidate_score == pytest.approx(0.8)
    assert decision.production_score == pytest.approx(0.55)
    assert decision.p_value == pytest.approx(mcnemar_exact_p(30, 5))
    assert decision.ci[0] > 0
    assert all(check.passed for check in decision.checks)
    table = decision.to_markdown()
    assert "Promotion gate: **Promoted**" in table
    assert "| significance | pass |" in table


def test_never_promotes_a_model_over_itself() -> None:
    cand, prod = paired(b=30, c=5, both=50, neither=15)
    decision = decide(scores("ft:same", cand), scores("ft:same", prod), EvaluationSettings())
    assert not decision.promote
    assert "different models" in decision.reason
    identical = scores("ft:same", cand)
    again = decide(identical, identical, EvaluationSettings())
    assert not again.promote
    assert again.p_value == 1.0


def test_holds_when_higher_but_not_significant() -> None:
    cand, prod = paired(b=6, c=3, both=50, neither=41)
    decision = decide(scores("new", cand), scores("old", prod), EvaluationSettings())
    assert not decision.promote
    failed = {c.name for c in decision.checks if not c.passed}
    assert failed == {"significance"}
    assert decision.p_value == pytest.approx(mcnemar_exact_p(6, 3))


def test_holds_on_ties_and_below_min_improvement_and_floor() -> None:
    cand, prod = paired(b=10, c=10, both=50, neither=30)
    tie = decide(scores("new", cand), scores("old", prod), EvaluationSettings())
    assert {c.name for c in tie.checks if not c.passed} == {"improvement", "significance"}

    cand, prod = paired(b=30, c=5, both=50, neither=15)
    strict = EvaluationSettings(min_improvement=0.3, floor=0.9)
    decision = decide(scores("new", cand), scores("old", prod), strict)
    assert {c.name for c in decision.checks if not c.passed} == {"improvement", "floor"}
    assert "Promotion gate: **Rejected**" in decision.to_markdown()


def test_guardrail_regression_blocks_a_better_primary() -> None:
    cand, prod = paired(b=30, c=5, both=50, neither=15)
    settings = EvaluationSettings(guardrails={"safety": 0.02, "tone": 0.1})
    safety = (scores("new", [1.0] * 90 + [0.0] * 10), scores("old", [1.0] * 95 + [0.0] * 5))
    tone = (scores("new", [1.0] * 92 + [0.0] * 8), scores("old", [1.0] * 95 + [0.0] * 5))
    blocked = decide(
        scores("new", cand), scores("old", prod), settings, guardrails={"safety": safety, "tone": tone}
    )
    assert not blocked.promote
    assert {c.name for c in blocked.checks if not c.passed} == {"guardrail:safety"}
    allowed = decide(scores("new", cand), scores("old", prod), settings, guardrails={"tone": tone})
    assert allowed.promote


def test_refuses_unpaired_scores() -> None:
    with pytest.raises(EvaluationError, match="same non-empty eval set"):
        decide(scores("a", [1.0, 0.0]), scores("b", [1.0]), EvaluationSettings())
    other = scores("b", [1.0, 0.0])
    other.item_ids = ["x", "y"]
    with pytest.raises(EvaluationError, match="different items"):
        decide(scores("a", [1.0, 0.0]), other, EvaluationSettings())


NON_INFERIORITY = EvaluationSettings(gate_mode="non_inferiority", margin=0.05, bootstrap_resamples=2000)


def test_tango_with_no_margin_is_mcnemars_z_and_a_margin_makes_a_small_loss_acceptable() -> None:
    from statistics import NormalDist

    for b, c in [(30, 20), (12, 25), (40, 40)]:
        assert tango_p(b, c, 500, 0.0) == pytest.approx(1 - NormalDist().cdf((b - c) / (b + c) ** 0.5))
    assert tango_p(20, 30, 500, 0.05) < 0.05 < tango_p(20, 30, 500, 0.0)  # -2 points, margin 5
    assert tango_p(20, 60, 500, 0.05) > 0.5  # -8 points: worse by more than the margin
    assert tango_p(0, 0, 500, 0.05) < 1e-6  # identical answers on 500 items


def test_tango_keeps_false_replacement_at_alpha_at_the_margin() -> None:
    import numpy as np

    rng = np.random.default_rng(20261207)
    rejected = 0
    for _ in range(2000):  # truly worse by exactly the margin: 30% discordant items
        draws = rng.random(500)
        b, c = int((draws < 0.125).sum()), int(((draws >= 0.125) & (draws < 0.3)).sum())
        rejected += tango_p(b, c, 500, 0.05) < 0.05
    assert rejected / 2000 < 0.05 + 3 * (0.05 * 0.95 / 2000) ** 0.5


def test_non_inferiority_promotes_a_candidate_slightly_worse_and_holds_one_worse_than_the_margin() -> None:
    cand, prod = paired(b=20, c=30, both=300, neither=150)  # 2 points worse on 500 items
    decision = decide(scores("new", cand), scores("old", prod), NON_INFERIORITY)
    assert decision.promote, decision.reason
    assert [c.name for c in decision.checks] == ["different models", "non-inferiority", "floor"]
    assert (
        decision.mode == "non_inferiority (margin 0.05)"
        and "Gate mode: non_inferiority" in decision.to_markdown()
    )
    assert "not worse than old by 0.05 or more" in decision.reason
    assert not decide(scores("new", cand), scores("old", prod), EvaluationSettings()).promote  # better mode

    cand, prod = paired(b=20, c=70, both=260, neither=150)  # 10 points worse
    held = decide(scores("new", cand), scores("old", prod), NON_INFERIORITY)
    assert not held.promote and "failed non-inferiority" in held.reason


def test_non_inferiority_on_graded_scores_uses_the_shifted_paired_bootstrap() -> None:
    prod = [0.6 + 0.3 * ((i * 7) % 10) / 10 for i in range(300)]
    close = [p - 0.01 for p in prod]
    far = [p - 0.2 for p in prod]
    near = decide(scores("new", close), scores("old", prod), NON_INFERIORITY)
    assert near.promote and "paired bootstrap" in near.method and near.ci[0] == pytest.approx(-0.01)
    assert not decide(scores("new", far), scores("old", prod), NON_INFERIORITY).promote
