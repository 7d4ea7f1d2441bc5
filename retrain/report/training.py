"""The ``training-metrics`` artifact: the loss curve as a chart, and a short table of it."""

from __future__ import annotations

from collections.abc import Sequence

from retrain.report.charts import loss_curve, markdown_image
from retrain.train.reports import metrics_table_markdown
from retrain.train.result import LossPoint

__all__ = ["training_metrics_markdown"]


def training_metrics_markdown(points: Sequence[LossPoint]) -> str:
    last = points[-1]
    lines = [
        f"# Training loss: {points[0].train_loss:.3f} at step {points[0].step}, "
        f"{last.train_loss:.3f} at step {last.step}",
        "",
    ]
    if len(points) >= 2:
        lines += [markdown_image("loss curve", loss_curve(points)), ""]
    return "\n".join([*lines, metrics_table_markdown(points)]) + "\n"
