"""What a person reads about the nights: the night summary, comparisons in words, charts and history.

Pure functions of what the other stages produced (plus reads of what the bucket already holds
for the history); the tasks publish them as Prefect artifacts and the CLI prints them.
"""

from retrain.report.charts import ScorePoint, loss_curve, markdown_image, score_history
from retrain.report.comparison import (
    Comparison,
    ItemExample,
    artifact_key,
    compare,
    comparison_markdown,
    significance_in_words,
)
from retrain.report.history import HistoryPoint, score_history_of
from retrain.report.night_summary import NightFacts, Tonight, night_summary_markdown

__all__ = [
    "Comparison",
    "HistoryPoint",
    "ItemExample",
    "NightFacts",
    "ScorePoint",
    "Tonight",
    "artifact_key",
    "compare",
    "comparison_markdown",
    "loss_curve",
    "markdown_image",
    "night_summary_markdown",
    "score_history",
    "score_history_of",
    "significance_in_words",
]
