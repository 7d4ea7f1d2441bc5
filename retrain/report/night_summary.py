"""The ``night-summary`` artifact: what happened tonight, on one page.

In order: the outcome; what came in (lines read = accepted + quarantined, the top reasons and a
few quarantined lines); what was trained (backend, base model, job, cost, a loss curve); how
the candidate compared with production on each eval set; what was decided and why; what
``production`` points to now, with production's score history; and the commands that show more.
A pure function of what the night produced, so it is tested without a Prefect server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from retrain.ingest.batches import IngestReport
from retrain.registry.records import ModelRecord
from retrain.report.charts import LossPoint, loss_curve, markdown_image, score_history
from retrain.report.comparison import Comparison, comparison_markdown
from retrain.report.history import HistoryPoint

__all__ = ["DecisionFacts", "NightFacts", "TrainingFacts", "night_summary_markdown"]

TOP_REASONS = 5
QUARANTINE_EXAMPLES = 3
_RAW_CHARS = 120


@dataclass(frozen=True)
class TrainingFacts:
    provider: str
    base_model: str
    job_id: str
    status: str
    estimated_usd: float | None = None
    trained_model: str | None = None
    resumed: bool = False
    loss: Sequence[LossPoint] = ()


@dataclass(frozen=True)
class DecisionFacts:
    promoted: bool
    reason: str
    failed_checks: Sequence[str] = ()
    approval: str = ""  # who approved or rejected, where a person answered


@dataclass(frozen=True)
class NightFacts:
    run_id: str
    outcome: str
    message: str
    batch: IngestReport | None = None
    quarantined: Sequence[dict[str, Any]] = ()
    dataset_version: str | None = None
    training: TrainingFacts | None = None
    comparisons: Sequence[Comparison] = ()
    decision: DecisionFacts | None = None
    production_before: str | None = None
    production_now: ModelRecord | None = None
    history: Sequence[HistoryPoint] = ()
    history_set: str = ""
    commands: list[str] = field(default_factory=list)


def _came_in(facts: NightFacts) -> list[str]:
    batch = facts.batch
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
        lines += ["| quarantined line | reasons |", "| --- | --- |"]
        for row in facts.quarantined[:QUARANTINE_EXAMPLES]:
            raw = " ".join(str(row.get("raw", "")).split())
            raw = raw if len(raw) <= _RAW_CHARS else raw[: _RAW_CHARS - 1] + "…"
            where = f"{row.get('source', '?')}:{row.get('line_no', '?')}"
            reasons_text = "; ".join(f"{r['code']}: {r['message']}" for r in row.get("reasons", []))
            lines.append(f"| `{where}` {_cell(raw)} | {_cell(reasons_text)} |")
        lines.append("")
    failed = [g for g in batch.gates if not g["passed"]]
    if failed:
        lines += [f"Batch gate **failed**: {g['name']}: {g.get('detail') or g['message']}" for g in failed]
        lines.append("")
    return lines


def _trained(training: TrainingFacts | None) -> list[str]:
    if training is None:
        return []
    cost = (
        f"${training.estimated_usd:.2f} estimated" if training.estimated_usd is not None else "cost unknown"
    )
    lines = [
        "## What was trained",
        "",
        f"- job `{training.job_id}` on provider `{training.provider}`"
        f"{' (resumed from an earlier run)' if training.resumed else ''}: **{training.status}**, {cost}",
        f"- base model `{training.base_model}`",
    ]
    if training.trained_model:
        lines.append(f"- trained model `{training.trained_model}`")
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


def _decided(decision: DecisionFacts | None) -> list[str]:
    if decision is None:
        return []
    verdict = "**Promoted**" if decision.promoted else "**Rejected**"
    lines = ["## What was decided", "", f"{verdict}: {decision.reason}", ""]
    if decision.approval:
        lines += [decision.approval, ""]
    if decision.failed_checks:
        lines += [f"- failed check: {check}" for check in decision.failed_checks]
        lines.append("")
    return lines


def _production(facts: NightFacts) -> list[str]:
    now = facts.production_now
    if now is None:
        current = "not set yet: the base model serves until a first candidate is promoted"
    else:
        current = f"`{now.model_id}` (provider `{now.provider}`)"
    moved = now is not None and facts.production_before not in (None, now.model_id)
    change = f", moved from `{facts.production_before}` tonight" if moved else ""
    lines = ["## Production now", "", f"`production` points to {current}{change}.", ""]
    if facts.history:
        title = f"Production's score on {facts.history_set}, last {len(facts.history)} night(s)"
        chart = score_history([p.chart_point() for p in facts.history], title=title)
        lines += [markdown_image("score history", chart), ""]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "(empty)"


def night_summary_markdown(facts: NightFacts) -> str:
    lines = [f"# {facts.run_id}: {facts.outcome}", "", facts.message, ""]
    lines += _came_in(facts)
    lines += _trained(facts.training)
    lines += _compared(facts.comparisons)
    lines += _decided(facts.decision)
    lines += _production(facts)
    if facts.commands:
        lines += ["## More", ""] + [f"- `{command}`" for command in facts.commands] + [""]
    return "\n".join(lines).rstrip() + "\n"
