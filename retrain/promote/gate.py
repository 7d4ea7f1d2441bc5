"""The promotion gate: pure functions from paired eval scores to a decision, promoted or rejected.

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
    lower end is the one-sided ``1 - alpha`` lower bound (``retrain.promote.statistics``).
``floor``
    The candidate's mean is at least ``floor`` (``RETRAIN_EVALUATION__FLOOR``, default 0.0).
``guardrail:<set>``
    On each guardrail eval set (``RETRAIN_EVALUATION__GUARDRAILS``, a JSON object of set name
    to tolerance, e.g. ``{"safety": 0.02}``), the candidate's mean does not fall below
    production's by more than the set's tolerance.

That is the ``better`` mode (``RETRAIN_EVALUATION__GATE_MODE``, the default). In the
``non_inferiority`` mode, for moving production off a model that is about to retire, the
``improvement`` and ``significance`` checks give way to one:

``non-inferiority``
    The candidate is not worse than production by more than ``margin``
    (``RETRAIN_EVALUATION__MARGIN``, in score units): one-sided p < ``alpha`` for H0:
    difference <= -margin, by Tango's score test for pass/fail graders and the paired bootstrap
    otherwise (``retrain.promote.statistics.non_inferiority``).

The other checks stay as they are; the decision names its mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retrain.config.stage_settings import EvaluationSettings
from retrain.promote.outcome import Outcome
from retrain.promote.statistics import Significance, non_inferiority, significance
from retrain.registry.aliases import CANDIDATE, PRODUCTION

if TYPE_CHECKING:
    from retrain.evaluate.results import EvalReport, ModelScores

__all__ = ["GateCheckResult", "GateDecision", "decide", "decide_reports"]


@dataclass(frozen=True)
class GateCheckResult:
    name: str
    passed: bool
    observed: float | str
    threshold: float | str
    detail: str


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
    mode: str = "better"  # or "non_inferiority (margin 0.02)"

    def to_markdown(self) -> str:
        """The decision as a markdown table (the ``eval-decision`` artifact)."""

        def cell(value: float | str) -> str:
            return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")

        verdict = Outcome.of_decision(self.promote).value
        lines = [
            f"## Promotion gate: **{verdict}**",
            "",
            f"Gate mode: {self.mode}",
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


def _checks(
    candidate: ModelScores, production: ModelScores, stats: Significance, settings: EvaluationSettings
) -> list[GateCheckResult]:
    """The checks on the primary eval set: different models, improvement, significance, floor."""
    return [
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


def _non_inferiority_checks(
    candidate: ModelScores, production: ModelScores, stats: Significance, settings: EvaluationSettings
) -> list[GateCheckResult]:
    """The checks of the non_inferiority mode: different models, non-inferiority, floor."""
    different, _, _, floor = _checks(candidate, production, stats, settings)
    test = GateCheckResult(
        "non-inferiority",
        stats.p_value < settings.alpha,
        stats.p_value,
        settings.alpha,
        f"one-sided p that the candidate is worse by {settings.margin:g} or more "
        f"(difference {stats.difference:+.4f}, lower bound {stats.ci[0]:+.4f}), {stats.method}",
    )
    return [different, test, floor]


def _reason(
    candidate: ModelScores,
    production: ModelScores,
    stats: Significance,
    failed: list[str],
    settings: EvaluationSettings,
) -> str:
    if failed:
        return f"{production.model_id} stays; failed {', '.join(failed)}"
    if settings.gate_mode == "non_inferiority":
        return (
            f"{candidate.model_id} is not worse than {production.model_id} by {settings.margin:g} or more: "
            f"{stats.difference:+.4f}, lower bound {stats.ci[0]:+.4f} (p = {stats.p_value:.3g})"
        )
    return (
        f"{candidate.model_id} beats {production.model_id} by {stats.difference:+.4f} "
        f"(p = {stats.p_value:.3g})"
    )


def decide(
    candidate: ModelScores,
    production: ModelScores,
    settings: EvaluationSettings,
    guardrails: Mapping[str, tuple[ModelScores, ModelScores]] | None = None,
) -> GateDecision:
    """Promoted or rejected: promoted only if every check in the module docstring passes.

    ``guardrails`` maps a guardrail set's name to (candidate, production) scores on it; its
    tolerance is ``settings.guardrails[name]`` (0.0 if the set is not listed there).
    """
    if settings.gate_mode == "non_inferiority":
        stats = non_inferiority(candidate, production, settings, settings.margin)
        checks = _non_inferiority_checks(candidate, production, stats, settings)
        mode = f"non_inferiority (margin {settings.margin:g})"
    else:
        stats = significance(candidate, production, settings)
        checks = _checks(candidate, production, stats, settings)
        mode = "better"
    checks += [
        _guardrail_check(name, pair, settings.guardrails.get(name, 0.0))
        for name, pair in (guardrails or {}).items()
    ]
    failed = [c.name for c in checks if not c.passed]
    return GateDecision(
        promote=not failed,
        reason=_reason(candidate, production, stats, failed, settings),
        checks=checks,
        candidate_score=candidate.mean,
        production_score=production.mean,
        p_value=stats.p_value,
        ci=stats.ci,
        method=stats.method,
        candidate_model=candidate.model_id,
        production_model=production.model_id,
        mode=mode,
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
