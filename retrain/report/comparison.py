"""How the candidate compared with production on one eval set, in the words a person reads.

Used by the ``eval-comparison-{set}`` artifacts and the night summary: both models named, the
score per grader, the difference with its interval and one-sided p-value explained in words,
and a few items where one model passed and the other failed (with both answers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.results import EvalReport, ItemResult
from retrain.promote.statistics import Significance, significance
from retrain.registry.aliases import CANDIDATE, PRODUCTION

__all__ = [
    "Comparison",
    "ItemExample",
    "artifact_key",
    "compare",
    "comparison_markdown",
    "markdown_cell",
    "significance_in_words",
]

EXAMPLES = 3
_ANSWER_CHARS = 160


@dataclass(frozen=True)
class ItemExample:
    item_id: str
    candidate_answer: str
    production_answer: str


@dataclass(frozen=True)
class Comparison:
    eval_set: str
    items: int
    candidate_model: str
    production_model: str
    candidate_mean: float
    production_mean: float
    by_grader: list[tuple[str, float, float]]  # grader, candidate, production
    significance: Significance
    only_candidate_passed: list[ItemExample]
    only_production_passed: list[ItemExample]
    total_only_candidate: int
    total_only_production: int

    @property
    def difference(self) -> float:
        return self.candidate_mean - self.production_mean


def artifact_key(prefix: str, eval_set: str) -> str:
    """``{prefix}-{set}`` as a Prefect artifact key (lowercase letters, digits and dashes only)."""
    return f"{prefix}-" + (re.sub(r"[^a-z0-9]+", "-", eval_set.lower()).strip("-") or "set")


def _answer(result: ItemResult) -> str:
    if result.error is not None:
        return f"(error: {result.error})"
    text = " ".join((result.output or "").split())
    return text if len(text) <= _ANSWER_CHARS else text[: _ANSWER_CHARS - 1] + "…"


def compare(report: EvalReport, settings: EvaluationSettings, *, examples: int = EXAMPLES) -> Comparison:
    """The comparison of the candidate and production on the report's eval set."""
    cand, prod = report.models[CANDIDATE], report.models[PRODUCTION]
    pairs = list(zip(report.results[CANDIDATE], report.results[PRODUCTION], strict=True))
    wins = [
        ItemExample(c.item_id, _answer(c), _answer(p))
        for c, p in pairs
        if c.grade.passed and not p.grade.passed
    ]
    losses = [
        ItemExample(c.item_id, _answer(c), _answer(p))
        for c, p in pairs
        if p.grade.passed and not c.grade.passed
    ]
    graders = sorted(set(cand.by_grader) | set(prod.by_grader))
    return Comparison(
        eval_set=report.eval_set,
        items=len(pairs),
        candidate_model=cand.model_id,
        production_model=prod.model_id,
        candidate_mean=cand.mean,
        production_mean=prod.mean,
        by_grader=[(g, cand.by_grader.get(g, 0.0), prod.by_grader.get(g, 0.0)) for g in graders],
        significance=significance(cand, prod, settings),
        only_candidate_passed=wins[:examples],
        only_production_passed=losses[:examples],
        total_only_candidate=len(wins),
        total_only_production=len(losses),
    )


def _chance(p_value: float) -> str:
    if p_value >= 0.5:
        return "no evidence that the candidate is better"
    chance = "less than once in 1,000" if p_value < 0.001 else f"about {p_value:.1%} of the time"
    return f"a difference this large would arise by chance {chance} if both were equally good"


def significance_in_words(comparison: Comparison) -> str:
    """The test, the interval and the p-value as one sentence a person can read."""
    s = comparison.significance
    return (
        f"difference {s.difference:+.3f} (interval {s.ci[0]:+.3f} to {s.ci[1]:+.3f}); "
        f"one-sided p = {s.p_value:.3g}: {_chance(s.p_value)}; {s.method}"
    )


def _examples_table(title: str, examples: list[ItemExample], total: int) -> list[str]:
    if not examples:
        return []
    lines = [
        f"**{title}** ({len(examples)} of {total}):",
        "",
        "| item | candidate answered | production answered |",
    ]
    lines.append("| --- | --- | --- |")
    lines += [
        f"| `{e.item_id}` | {markdown_cell(e.candidate_answer)} | {markdown_cell(e.production_answer)} |"
        for e in examples
    ]
    return [*lines, ""]


def markdown_cell(text: str) -> str:
    """Text for one cell of a markdown table: pipes escaped, on one line."""
    return text.replace("|", "\\|").replace("\n", " ") or "(empty)"


def comparison_markdown(comparison: Comparison, *, heading: str = "###") -> str:
    """The comparison as markdown: models, scores per grader, the test in words, example items."""
    c = comparison
    lines = [
        f"{heading} Eval set `{c.eval_set}` ({c.items} items)",
        "",
        f"- candidate `{c.candidate_model}`: **{c.candidate_mean:.3f}**",
        f"- production `{c.production_model}`: **{c.production_mean:.3f}**",
        f"- {significance_in_words(c)}",
        "",
    ]
    if len(c.by_grader) > 1:
        lines += ["| grader | candidate | production | difference |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {g} | {cand:.3f} | {prod:.3f} | {cand - prod:+.3f} |" for g, cand, prod in c.by_grader]
        lines.append("")
    lines += _examples_table(
        "Production passed, the candidate failed", c.only_production_passed, c.total_only_production
    )
    lines += _examples_table(
        "The candidate passed, production failed", c.only_candidate_passed, c.total_only_candidate
    )
    return "\n".join(lines).rstrip() + "\n"
