"""What a person reads in the Prefect UI about a fine-tuning job: its progress, metrics and summary.

Pure functions of domain objects, so they are tested without a Prefect server; the tasks
publish them as artifacts with stable keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from retrain.train.result import LossPoint

__all__ = [
    "loss_points",
    "metrics_rows",
    "metrics_table_markdown",
    "training_job_markdown",
    "training_progress",
]

TABLE_ROWS = 10


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


def loss_points(events: Iterable[FineTuningJobEvent]) -> list[LossPoint]:
    """The training (and, where reported, validation) loss of each step, in step order."""
    points = []
    for row in metrics_rows(events):
        step, train = row.get("step"), row.get("train_loss")
        if isinstance(step, int | float) and isinstance(train, int | float):
            valid = row.get("valid_loss")
            points.append(
                LossPoint(int(step), float(train), float(valid) if isinstance(valid, int | float) else None)
            )
    return points


def metrics_table_markdown(points: Sequence[LossPoint], *, rows: int = TABLE_ROWS) -> str:
    """A short table of the loss: about ``rows`` steps evenly spread, the last one always, rounded."""
    if not points:
        return ""
    stride = max(1, -(-len(points) // rows))
    shown = [*points[::stride][: rows - 1], points[-1]] if len(points) > rows else list(points)
    has_valid = any(p.valid_loss is not None for p in points)
    header = "| step | training loss |" + (" validation loss |" if has_valid else "")
    lines = [header, "| ---: | ---: |" + (" ---: |" if has_valid else "")]
    for p in dict.fromkeys(shown):
        valid = "" if not has_valid else f" {p.valid_loss:.3f} |" if p.valid_loss is not None else " - |"
        lines.append(f"| {p.step} | {p.train_loss:.3f} |{valid}")
    return "\n".join(lines)


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
