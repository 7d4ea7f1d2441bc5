"""Charts for the Prefect UI: matplotlib figures as SVG data URIs a markdown artifact renders.

Prefect's UI renders ``![title](data:image/svg+xml;base64,...)`` inside a markdown artifact
and strips inline ``<svg>`` tags, so each chart is an SVG embedded as a data URI: no external
link, no file to host. The figures have their own dark background, so they read the same in
the UI's dark and light themes. matplotlib is imported when a chart is drawn (its import
costs seconds), and only its object-oriented API is used (no pyplot, no global state).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retrain.train.result import LossPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["ScorePoint", "loss_curve", "markdown_image", "score_history"]

_BACKGROUND = "#1f2430"
_TEXT = "#d8dee9"
_GRID = "#3b4252"
_LINE = "#88c0d0"
_SECOND_LINE = "#ebcb8b"
_MARKERS = {
    "promoted": ("^", "#a3be8c", "promoted"),
    "rejected": ("X", "#bf616a", "rejected"),
    "rolled back": ("o", "#d08770", "rolled back"),
}


@dataclass(frozen=True)
class ScorePoint:
    """Production's score on one eval set after one night, and what happened that night."""

    night: str
    score: float
    event: str = ""  # "promoted", "rejected", "rolled back" or "" (nothing moved)


def _figure(title: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 3.0), dpi=100, facecolor=_BACKGROUND, layout="constrained")
    axes = figure.add_subplot()
    axes.set_facecolor(_BACKGROUND)
    axes.set_title(title, color=_TEXT, fontsize=11, loc="left")
    axes.tick_params(colors=_TEXT, labelsize=8)
    for spine in axes.spines.values():
        spine.set_color(_GRID)
    axes.grid(color=_GRID, linewidth=0.6)
    return figure, axes


def _legend(axes: Axes) -> None:
    legend = axes.legend(fontsize=8, facecolor=_BACKGROUND, edgecolor=_GRID, labelcolor=_TEXT)
    legend.get_frame().set_alpha(0.9)


def _data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", facecolor=figure.get_facecolor(), metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def loss_curve(points: Sequence[LossPoint], *, title: str = "Training loss") -> str:
    """The training (and validation) loss per step, as an SVG data URI."""
    figure, axes = _figure(title)
    axes.plot([p.step for p in points], [p.train_loss for p in points], color=_LINE, label="train loss")
    valid = [(p.step, p.valid_loss) for p in points if p.valid_loss is not None]
    if valid:
        axes.plot(
            [step for step, _ in valid],
            [loss for _, loss in valid],
            color=_SECOND_LINE,
            marker=".",
            label="validation loss",
        )
    axes.set_xlabel("step", color=_TEXT, fontsize=9)
    _legend(axes)
    return _data_uri(figure)


def score_history(points: Sequence[ScorePoint], *, title: str) -> str:
    """Production's score night by night, with promotions, rejections and rollbacks marked."""
    figure, axes = _figure(title)
    positions = range(len(points))
    axes.plot(positions, [p.score for p in points], color=_LINE, label="production", zorder=2)
    for event, (marker, colour, label) in _MARKERS.items():
        marked = [(i, p.score) for i, p in zip(positions, points, strict=True) if p.event == event]
        if marked:
            xs, ys = [x for x, _ in marked], [y for _, y in marked]
            axes.scatter(xs, ys, marker=marker, s=60, color=colour, label=label, zorder=3)
    axes.set_xticks(list(positions), [p.night for p in points], rotation=45, ha="right")
    axes.set_ylim(-0.02, 1.02)
    axes.set_ylabel("mean score", color=_TEXT, fontsize=9)
    _legend(axes)
    return _data_uri(figure)


def markdown_image(title: str, data_uri: str) -> str:
    return f"![{title}]({data_uri})"
