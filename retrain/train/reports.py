"""What a person reads in the Prefect UI about a fine-tuning job: its progress, metrics and summary.

Pure functions of domain objects, so they are tested without a Prefect server; the tasks
publish them as artifacts with stable keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

__all__ = ["metrics_rows", "training_job_markdown", "training_progress"]


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
