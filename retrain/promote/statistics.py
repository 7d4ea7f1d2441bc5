"""The paired statistics of the promotion gate: does the candidate score higher than production
on the same items (``significance``), or is it at least not worse by more than a margin
(``non_inferiority``)?

Pass/fail scores (every score 0 or 1) get the exact one-sided McNemar test and a Wald interval for
the difference of paired proportions; any other scores a seeded paired bootstrap of the per-item
differences. Both report a two-sided ``1 - 2*alpha`` confidence interval, whose lower end is the
one-sided ``1 - alpha`` lower bound.

Non-inferiority with margin ``δ`` tests H0: difference <= -δ against H1: difference > -δ. Pass/fail
scores get Tango's score test for the difference of paired proportions (Tango 1998, Statistics
in Medicine 17:891-908; with δ = 0 it is McNemar's z), any other scores the same paired bootstrap
over the differences shifted by δ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from retrain.config.stage_settings import EvaluationSettings
from retrain.exceptions import EvaluationError

if TYPE_CHECKING:
    from retrain.evaluate.results import ModelScores

__all__ = [
    "Significance",
    "is_binary",
    "mcnemar_exact_p",
    "non_inferiority",
    "paired_binary_ci",
    "paired_bootstrap",
    "tango_p",
    "significance",
]

_BOOTSTRAP_CELLS = 2_000_000


@dataclass(frozen=True)
class Significance:
    method: str
    difference: float
    p_value: float
    ci: tuple[float, float]


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


def tango_p(b: int, c: int, n: int, margin: float) -> float:
    """One-sided p-value of H0: p10 - p01 <= -margin by Tango's score test (see the module doc).

    ``b`` counts items only the candidate passes, ``c`` items only production passes, of ``n``.
    """
    delta = -margin
    a_coef = 2 * n
    b_coef = -b - c + (2 * n - b + c) * delta
    c_coef = -c * delta * (1 - delta)
    restricted = (math.sqrt(max(0.0, b_coef**2 - 4 * a_coef * c_coef)) - b_coef) / (2 * a_coef)
    variance = n * (2 * restricted + delta * (1 - delta))
    if variance <= 0:
        return 1.0 if b - c - n * delta <= 0 else 0.0
    z = (b - c - n * delta) / math.sqrt(variance)
    return 1 - NormalDist().cdf(z)


def _paired(candidate: ModelScores, production: ModelScores) -> None:
    if len(candidate.scores) != len(production.scores) or not candidate.scores:
        raise EvaluationError(
            f"cannot compare {len(candidate.scores)} candidate scores with {len(production.scores)} "
            "production scores: evaluate both models on the same non-empty eval set"
        )
    if candidate.item_ids and production.item_ids and candidate.item_ids != production.item_ids:
        raise EvaluationError(
            "candidate and production were scored on different items: evaluate them together"
        )


def _pass_fail(
    candidate: ModelScores, production: ModelScores
) -> tuple[list[bool], list[bool], int, int] | None:
    """Both models' pass/fail outcomes and the discordant counts (items only the candidate passes,
    items only production passes), or None when either has a graded score."""
    if not (is_binary(candidate.scores) and is_binary(production.scores)):
        return None
    cand = [s == 1.0 for s in candidate.scores]
    prod = [s == 1.0 for s in production.scores]
    b = sum(c and not p for c, p in zip(cand, prod, strict=True))
    c = sum(p and not c for c, p in zip(cand, prod, strict=True))
    return cand, prod, b, c


def _discordant_words(b: int, c: int) -> str:
    return f"{b + c} discordant items: {b} passed only by the candidate, {c} only by production"


def significance(
    candidate: ModelScores, production: ModelScores, settings: EvaluationSettings
) -> Significance:
    """Paired one-sided test that the candidate scores higher than production on the same items."""
    _paired(candidate, production)
    difference = candidate.mean - production.mean
    if (outcomes := _pass_fail(candidate, production)) is not None:
        cand, prod, b, c = outcomes
        ci = paired_binary_ci(cand, prod, settings.alpha)
        method = f"exact McNemar test on {_discordant_words(b, c)}"
        return Significance(method, difference, mcnemar_exact_p(b, c), ci)
    diffs = [c - p for c, p in zip(candidate.scores, production.scores, strict=True)]
    p_value, ci = paired_bootstrap(
        diffs, resamples=settings.bootstrap_resamples, seed=settings.seed, alpha=settings.alpha
    )
    return Significance(
        f"paired bootstrap ({settings.bootstrap_resamples} resamples)", difference, p_value, ci
    )


def non_inferiority(
    candidate: ModelScores, production: ModelScores, settings: EvaluationSettings, margin: float
) -> Significance:
    """Paired one-sided test that the candidate is not worse than production by more than ``margin``."""
    _paired(candidate, production)
    difference = candidate.mean - production.mean
    if (outcomes := _pass_fail(candidate, production)) is not None:
        cand, prod, b, c = outcomes
        method = f"Tango score test, margin {margin:g}, on {_discordant_words(b, c)}"
        p_value = tango_p(b, c, len(cand), margin)
        return Significance(method, difference, p_value, paired_binary_ci(cand, prod, settings.alpha))
    shifted = [c - p + margin for c, p in zip(candidate.scores, production.scores, strict=True)]
    p_value, (low, high) = paired_bootstrap(
        shifted, resamples=settings.bootstrap_resamples, seed=settings.seed, alpha=settings.alpha
    )
    method = f"paired bootstrap ({settings.bootstrap_resamples} resamples), margin {margin:g}"
    return Significance(method, difference, p_value, (low - margin, high - margin))
