"""The promotion gate: pure functions from paired eval scores to a promote / hold decision.

A candidate is promoted over production only if every check passes:

``different models``
    The candidate is not the production model itself (a model never replaces itself).
``improvement``
    The candidate's mean score on the primary eval set is higher than production's by at
    least ``min_improvement`` (``RETRAIN_EVALUATION__MIN_IMPROVEMENT``, default 0.0, i.e. any
    improvement; the mean is the pass rate for pass/fail graders).
``significance``
    The improvement is statistically significant: one-sided p < ``alpha``
    (``RETRAIN_EVALUATION__ALPHA``, default 0.05). Both models answer the same items, so the
    test is paired: the exact one-sided McNemar test when every score is 0 or 1 (pass/fail
    graders), otherwise a paired bootstrap of the per-item differences
    (``RETRAIN_EVALUATION__BOOTSTRAP_RESAMPLES``, default 10,000, seeded with
    ``RETRAIN_EVALUATION__SEED`` so decisions are reproducible). The decision also reports a
    two-sided ``1 - 2*alpha`` confidence interval for the difference (default 90%), whose
    lower end is the one-sided ``1 - alpha`` lower bound.
``floor``
    The candidate's mean is at least ``floor`` (``RETRAIN_EVALUATION__FLOOR``, default 0.0).
``guardrail:<set>``
    On each guardrail eval set (``RETRAIN_EVALUATION__GUARDRAILS``, a JSON object of set name
    to tolerance, e.g. ``{"safety": 0.02}``), the candidate's mean does not fall below
    production's by more than the set's tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from retrain.config.settings import EvaluationSettings
from retrain.exceptions import EvaluationError
from retrain.registry.aliases import CANDIDATE, PRODUCTION

if TYPE_CHECKING:
    from retrain.evaluate.results import EvalReport, ModelScores

__all__ = [
    "GateCheckResult",
    "GateDecision",
    "Significance",
    "decide",
    "decide_reports",
    "is_binary",
    "mcnemar_exact_p",
    "paired_bootstrap",
    "paired_binary_ci",
    "significance",
]

_BOOTSTRAP_CELLS = 2_000_000


@dataclass(frozen=True)
class GateCheckResult:
    name: str
    passed: bool
    observed: float | str
    threshold: float | str
    detail: str


@dataclass(frozen=True)
class Significance:
    method: str
    difference: float
    p_value: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    checks: list[GateCheckResult]
    candidate_score: float
    production_score: float
    p_value: float
    ci: tuple[float, float]
    method: str = ""
    candidate_model: str = ""
    production_model: str = ""

    def to_markdown(self) -> str:
        """The decision as a markdown table (the ``eval-decision`` artifact)."""

        def cell(value: float | str) -> str:
            return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")

        verdict = "PROMOTE" if self.promote else "HOLD"
        lines = [
            f"## Promotion gate: **{verdict}**",
            "",
            self.reason,
            "",
            f"- candidate `{self.candidate_model}`: {self.candidate_score:.4f}",
            f"- production `{self.production_model}`: {self.production_score:.4f}",
            f"- difference {self.candidate_score - self.production_score:+.4f}, "
            f"CI [{self.ci[0]:+.4f}, {self.ci[1]:+.4f}], one-sided p = {self.p_value:.4g} ({self.method})",
            "",
            "| check | result | observed | threshold | detail |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {cell(c.observed)} | {cell(c.threshold)} "
            f"| {cell(c.detail)} |"
            for c in self.checks
        ]
        return "\n".join(lines) + "\n"


def mcnemar_exact_p(b: int, c: int) -> float:
    """One-sided exact McNemar p-value: P(X >= b) for X ~ Binomial(b + c, 1/2).

    ``b`` counts items only the candidate passes, ``c`` items only production passes.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, k) for k in range(b, n + 1)) / 2**n)


def paired_binary_ci(
    candidate: Sequence[bool], production: Sequence[bool], alpha: float
) -> tuple[float, float]:
    """Two-sided 1 - 2*alpha Wald interval for the difference of paired proportions."""
    n = len(candidate)
    b = sum(c and not p for c, p in zip(candidate, production, strict=True))
    c = sum(p and not c for c, p in zip(candidate, production, strict=True))
    diff = (b - c) / n
    variance = max(0.0, (b + c) - (b - c) ** 2 / n) / n**2
    half = NormalDist().inv_cdf(1 - alpha) * math.sqrt(variance)
    return diff - half, diff + half


def paired_bootstrap(
    differences: Sequence[float], *, resamples: int, seed: int, alpha: float
) -> tuple[float, tuple[float, float]]:
    """One-sided p-value for mean difference > 0 and the two-sided 1 - 2*alpha percentile CI.

    The p-value resamples the differences centred on zero (the null hypothesis) and counts
    resampled means at least as large as the observed one: (1 + count) / (1 + resamples).
    """
    d = np.asarray(differences, dtype=float)
    n = d.size
    if n == 0:
        raise EvaluationError("no paired scores to compare: the eval set is empty")
    observed = float(d.mean())
    centred = d - observed
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // n)
    means = np.concatenate(
        [
            centred[rng.integers(0, n, size=(min(chunk, resamples - start), n))].mean(axis=1)
            for start in range(0, resamples, chunk)
        ]
    )
    at_least = int(np.count_nonzero(means >= observed - 1e-12))
    p_value = (1 + at_least) / (1 + resamples) if observed > 1e-12 else 1.0
    low, high = np.quantile(means, [alpha, 1 - alpha]) + observed
    return p_value, (float(low), float(high))


def is_binary(scores: Sequence[float]) -> bool:
    return all(score in (0.0, 1.0) for score in scores)


def significance(
    candidate: ModelScores, production: ModelScores, settings: EvaluationSettings
) -> Significance:
    """Paired one-sided test that the candidate scores higher than production on the same items."""
    if len(candidate.scores) != len(production.scores) or not candidate.scores:
        raise EvaluationError(
            f"cannot compare {len(candidate.scores)} candidate scores with {len(production.scores)} "
            "production scores: evaluate both models on the same non-empty eval set"
        )
    if candidate.item_ids and production.item_ids and candidate.item_ids != production.item_ids:
        raise EvaluationError(
            "candidate and production were scored on different items: evaluate them together"
        )
    difference = candidate.mean - production.mean
    if is_binary(candidate.scores) and is_binary(production.scores):
        cand = [s == 1.0 for s in candidate.scores]
        prod = [s == 1.0 for s in production.scores]
        b = sum(c and not p for c, p in zip(cand, prod, strict=True))
        c = sum(p and not c for c, p in zip(cand, prod, strict=True))
        ci = paired_binary_ci(cand, prod, settings.alpha)
        return Significance(f"exact McNemar (b={b}, c={c})", difference, mcnemar_exact_p(b, c), ci)
    diffs = [c - p for c, p in zip(candidate.scores, production.scores, strict=True)]
    p_value, ci = paired_bootstrap(
        diffs, resamples=settings.bootstrap_resamples, seed=settings.seed, alpha=settings.alpha
    )
    return Significance(
        f"paired bootstrap ({settings.bootstrap_resamples} resamples)", difference, p_value, ci
    )


def _guardrail_check(name: str, pair: tuple[ModelScores, ModelScores], tolerance: float) -> GateCheckResult:
    candidate, production = pair
    change = candidate.mean - production.mean
    return GateCheckResult(
        name=f"guardrail:{name}",
        passed=change >= -tolerance - 1e-12,
        observed=change,
        threshold=-tolerance,
        detail=f"{candidate.mean:.4f} vs {production.mean:.4f} (may drop by {tolerance:g})",
    )


def decide(
    candidate: ModelScores,
    production: ModelScores,
    settings: EvaluationSettings,
    guardrails: Mapping[str, tuple[ModelScores, ModelScores]] | None = None,
) -> GateDecision:
    """Promote or hold: every check in the module docstring must pass.

    ``guardrails`` maps a guardrail set's name to (candidate, production) scores on it; its
    tolerance is ``settings.guardrails[name]`` (0.0 if the set is not listed there).
    """
    stats = significance(candidate, production, settings)
    checks = [
        GateCheckResult(
            "different models",
            candidate.model_id != production.model_id,
            candidate.model_id,
            f"!= {production.model_id}",
            "a model never replaces itself",
        ),
        GateCheckResult(
            "improvement",
            stats.difference > 1e-12 and stats.difference >= settings.min_improvement - 1e-12,
            stats.difference,
            settings.min_improvement,
            f"{candidate.mean:.4f} - {production.mean:.4f}, must be > 0 and >= min_improvement",
        ),
        GateCheckResult(
            "significance",
            stats.p_value < settings.alpha,
            stats.p_value,
            settings.alpha,
            f"one-sided p, {stats.method}",
        ),
        GateCheckResult(
            "floor",
            candidate.mean >= settings.floor,
            candidate.mean,
            settings.floor,
            "candidate mean >= floor",
        ),
    ]
    checks += [
        _guardrail_check(name, pair, settings.guardrails.get(name, 0.0))
        for name, pair in (guardrails or {}).items()
    ]
    failed = [c.name for c in checks if not c.passed]
    if failed:
        reason = f"hold: {production.model_id} stays; failed {', '.join(failed)}"
    else:
        reason = (
            f"promote: {candidate.model_id} beats {production.model_id} by {stats.difference:+.4f} "
            f"(p = {stats.p_value:.3g})"
        )
    return GateDecision(
        promote=not failed,
        reason=reason,
        checks=checks,
        candidate_score=candidate.mean,
        production_score=production.mean,
        p_value=stats.p_value,
        ci=stats.ci,
        method=stats.method,
        candidate_model=candidate.model_id,
        production_model=production.model_id,
    )


def decide_reports(
    main: EvalReport, guardrails: Mapping[str, EvalReport], settings: EvaluationSettings
) -> GateDecision:
    """decide() over eval reports whose targets are labelled ``candidate`` and ``production``."""
    return decide(
        main.models[CANDIDATE],
        main.models[PRODUCTION],
        settings,
        guardrails={name: (r.models[CANDIDATE], r.models[PRODUCTION]) for name, r in guardrails.items()},
    )
