"""The ``night-summary`` artifact: what happened tonight, on one page.

In order: the outcome; what came in (lines read = accepted + quarantined, the top reasons and a
few quarantined lines); what was trained (provider, base model, job, cost, a loss curve); how
the candidate compared with production on each eval set; what was decided and why; what
``production`` points to now, with production's score history; and the commands that show more.

``Tonight`` is what the nightly flow produced, filled in as it goes; ``NightFacts`` adds what the
summary reads from the bucket (a few quarantined lines, production now, the history). Rendering
is a pure function of them, so it is tested without a Prefect server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.results import EvalReport
from retrain.ingest.batches import IngestReport
from retrain.promote.comparison import GateSets
from retrain.promote.decision import Decision
from retrain.promote.gate import decide_reports
from retrain.registry.records import ModelRecord
from retrain.report.charts import loss_curve, markdown_image, score_history
from retrain.report.comparison import Comparison, compare, comparison_markdown, markdown_cell
from retrain.report.history import HistoryPoint
from retrain.train.plan import TrainingPlan
from retrain.train.result import TrainingResult

__all__ = ["NightFacts", "Tonight", "night_summary_markdown"]

TOP_REASONS = 5
QUARANTINE_EXAMPLES = 3
_RAW_CHARS = 80


@dataclass
class Tonight:
    """What the nightly flow produced so far; each stage fills in its part."""

    run_id: str
    batch: IngestReport | None = None
    plan: TrainingPlan | None = None
    estimated_usd: float | None = None
    training: TrainingResult | None = None
    production: ModelRecord | None = None  # the model the candidate was compared with
    reports: GateSets[EvalReport] | None = None
    decision: Decision | None = None


@dataclass(frozen=True)
class NightFacts:
    tonight: Tonight
    outcome: str
    message: str
    quarantined: Sequence[dict[str, Any]] = ()
    comparisons: Sequence[Comparison] = ()
    failed_checks: Sequence[str] = ()
    production_now: ModelRecord | None = None
    history: Sequence[HistoryPoint] = ()
    history_set: str = ""

    @classmethod
    def of(
        cls,
        tonight: Tonight,
        outcome: str,
        message: str,
        settings: EvaluationSettings,
        **read: Any,
    ) -> NightFacts:
        """The facts of a night: its comparisons and failed gate checks derived from its reports,
        plus what was read from the bucket (``quarantined``, ``production_now``, ``history``)."""
        reports = tonight.reports
        comparisons, failed = [], []
        if reports is not None:
            comparisons = [compare(report, settings) for report in reports.by_set().values()]
            gate = decide_reports(reports.main, reports.guardrails, settings)
            failed = [f"{c.name}: {c.detail}" for c in gate.checks if not c.passed]
        return cls(tonight, outcome, message, comparisons=comparisons, failed_checks=failed, **read)


def _quarantined_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| reasons | quarantined line |", "| --- | --- |"]
    for row in rows[:QUARANTINE_EXAMPLES]:
        raw = " ".join(str(row.get("raw", "")).split())
        raw = raw if len(raw) <= _RAW_CHARS else raw[: _RAW_CHARS - 1] + "…"
        where = f"{row.get('source', '?')}:{row.get('line_no', '?')}"
        reasons = "; ".join(f"{r['code']}: {r['message']}" for r in row.get("reasons", []))
        lines.append(f"| {markdown_cell(reasons)} | `{where}` {markdown_cell(raw)} |")
    return [*lines, ""]


def _came_in(facts: NightFacts) -> list[str]:
    batch = facts.tonight.batch
    if batch is None:
        return ["## What came in", "", "No new objects under `incoming/` tonight.", ""]
    lines = [
        "## What came in",
        "",
        f"**{batch.lines_read}** lines read = **{batch.accepted}** accepted + **{batch.quarantined}** "
        f"quarantined, from {len(batch.objects)} object(s) (batch `{batch.batch_id}`).",
        "",
    ]
    reasons = sorted(batch.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    if reasons:
        lines += ["| top quarantine reasons | lines |", "| --- | ---: |"]
        lines += [f"| `{code}` | {count} |" for code, count in reasons]
        lines.append("")
    if facts.quarantined:
        lines += _quarantined_lines(facts.quarantined)
    failed = [g for g in batch.gates if not g["passed"]]
    if failed:
        lines += [f"Batch gate **failed**: {g['name']}: {g.get('detail') or g['message']}" for g in failed]
        lines.append("")
    return lines


def _trained(tonight: Tonight) -> list[str]:
    training = tonight.training
    if training is None:
        return []
    cost = (
        f"${tonight.estimated_usd:.2f} estimated"
        if tonight.estimated_usd is not None
        else "cost not estimated"
    )
    resumed = " (resumed from an earlier run)" if training.resumed else ""
    lines = [
        "## What was trained",
        "",
        f"- job `{training.job_id}` on provider `{training.provider}`{resumed}: "
        f"**{training.status}**, {cost}",
        f"- base model `{training.base_model}`, trained by the {training.backend} backend",
    ]
    if training.model_id:
        lines.append(f"- trained model `{training.model_id}`")
    lines.append("")
    if len(training.loss) >= 2:
        lines += [markdown_image("loss curve", loss_curve(training.loss)), ""]
    return lines


def _compared(comparisons: Sequence[Comparison]) -> list[str]:
    if not comparisons:
        return []
    lines = ["## How the candidate compared with production", ""]
    for comparison in comparisons:
        lines += [comparison_markdown(comparison), ""]
    return lines


def _decided(facts: NightFacts) -> list[str]:
    decision = facts.tonight.decision
    if decision is None:
        return []
    lines = [
        "## What was decided",
        "",
        f"**{decision.outcome}**: {decision.reason}",
        "",
    ]
    if decision.approval is not None and decision.approval.verdict != "not asked":
        lines += [f"The promotion was {decision.approval.who} ({decision.approval.note or 'no note'}).", ""]
    lines += [f"- failed check: {check}" for check in facts.failed_checks]
    return [*lines, ""] if facts.failed_checks else lines


def _production(facts: NightFacts) -> list[str]:
    now, before = facts.production_now, facts.tonight.production
    if now is None:
        current = "is not set yet: the base model serves until a first candidate is promoted"
    else:
        current = f"points to `{now.model_id}` (provider `{now.provider}`)"
    moved = now is not None and before is not None and before.model_id != now.model_id
    change = f", moved from `{before.model_id}` tonight" if moved and before is not None else ""
    lines = ["## Production now", "", f"`production` {current}{change}.", ""]
    if facts.history:
        title = f"Production's score on {facts.history_set}, last {len(facts.history)} night(s)"
        chart = score_history([p.chart_point() for p in facts.history], title=title)
        lines += [markdown_image("score history", chart), ""]
    return lines


def _commands(facts: NightFacts) -> list[str]:
    tonight = facts.tonight
    commands = []
    if tonight.batch is not None:
        commands.append(f"retrain batches show {tonight.batch.batch_id}")
    if tonight.plan is not None and tonight.plan.version is not None:
        commands.append(f"retrain data show {tonight.plan.version.version_id}")
    if tonight.training is not None:
        commands.append(f"retrain jobs show {tonight.training.job_id}")
    commands += ["retrain alias history production", f"retrain history --set {facts.history_set or 'main'}"]
    return ["## More", "", *[f"- `{command}`" for command in commands], ""]


def night_summary_markdown(facts: NightFacts) -> str:
    lines = [f"# {facts.tonight.run_id}: {facts.outcome}", "", facts.message, ""]
    lines += _came_in(facts)
    lines += _trained(facts.tonight)
    lines += _compared(facts.comparisons)
    lines += _decided(facts)
    lines += _production(facts)
    lines += _commands(facts)
    return "\n".join(lines).rstrip() + "\n"
