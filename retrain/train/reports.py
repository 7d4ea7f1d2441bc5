"""What a person reads in the Prefect UI: tables and markdown built from run results.

Pure functions of domain objects, so they are tested without a Prefect server; the tasks
publish them as artifacts with stable keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from retrain.ingest.batches import IngestReport

__all__ = ["metrics_rows", "training_job_markdown", "training_progress", "validation_markdown"]


def validation_markdown(report: IngestReport) -> str:
    """Accepted / quarantined by reason, per object, and each batch gate."""
    verdict = "passed" if report.passed else "**rejected**"
    lines = [
        f"# Validation of batch `{report.batch_id}`: {verdict}",
        "",
        f"**{report.lines_read}** lines read = **{report.accepted}** accepted + "
        f"**{report.quarantined}** quarantined",
        "",
    ]
    if report.version_id:
        lines += [
            f"Curated dataset version: `{report.version_id}` (`retrain data show {report.version_id}`)",
            "",
        ]
    if report.quarantine_key:
        lines += [
            f"Quarantine: `{report.quarantine_key}` (its lines and reasons: "
            f"`retrain batches show {report.batch_id}`)",
            "",
        ]
    if report.by_reason:
        lines += ["| reason | lines |", "| --- | ---: |"]
        lines += [
            f"| `{code}` | {count} |"
            for code, count in sorted(report.by_reason.items(), key=lambda kv: -kv[1])
        ]
        lines.append("")
    lines += ["| object | lines | accepted | quarantined |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| `{o.key}` | {o.lines_read} | {o.accepted} | {o.quarantined} |" for o in report.objects]
    if report.gates:
        lines += ["", "| gate | result | detail |", "| --- | --- | --- |"]
        for gate in report.gates:
            result = "pass" if gate["passed"] else "**FAIL**"
            # reports stored before gates had a detail carry only the message
            lines.append(f"| {gate['name']} | {result} | {gate.get('detail') or gate['message']} |")
    if report.cost_estimate_usd is not None:
        lines += ["", f"Estimated training cost of this batch: ${report.cost_estimate_usd:.2f}"]
    return "\n".join(lines)


def training_progress(event: FineTuningJobEvent) -> tuple[float, float, str] | None:
    """(step, total steps, a line saying so) of a `metrics` event that counts its steps."""
    data = event.data if event.type == "metrics" and isinstance(event.data, dict) else {}
    step, total, loss = data.get("step"), data.get("total_steps"), data.get("train_loss")
    if not isinstance(step, int | float) or not isinstance(total, int | float) or total <= 0:
        return None
    line = f"step {step:g} of {total:g}"
    if isinstance(loss, int | float):
        line += f", training loss {loss:.4g}"
    return float(step), float(total), line


def metrics_rows(events: Iterable[FineTuningJobEvent]) -> list[dict[str, Any]]:
    """One row per `metrics` event: step, losses and token accuracies."""
    rows = []
    for event in events:
        if event.type == "metrics" and isinstance(event.data, dict):
            rows.append({key: event.data.get(key) for key in sorted(event.data)})
    return sorted(rows, key=lambda row: row.get("step") or 0)


def training_job_markdown(job: FineTuningJob, provider: str, resumed: bool) -> str:
    lines = [
        f"# Fine-tuning job `{job.id}`",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| provider | {provider} |",
        f"| status | **{job.status}** |",
        f"| base model | `{job.model}` |",
        f"| fine-tuned model | `{job.fine_tuned_model or '-'}` |",
        f"| trained tokens | {job.trained_tokens if job.trained_tokens is not None else '-'} |",
        f"| dataset version | `{(job.metadata or {}).get('dataset_version', '-')}` |",
        f"| resumed an existing job | {'yes' if resumed else 'no'} |",
    ]
    if job.error and job.error.message:
        lines.append(f"| error | {job.error.code}: {job.error.message} |")
    return "\n".join(lines)
