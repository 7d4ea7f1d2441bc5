"""Production's score on each eval set, night by night, from what the bucket already holds.

Nothing new is recorded for the history. Each night that decided leaves its decision under
``state/decisions/`` (both models' scores on the primary set, and whether the candidate was
promoted) and each eval set's summary under ``evals/{run_id}[-{set}]/summary.json``; the
registry log has every rollback of ``production``. After a night, production's score is the
candidate's when it was promoted, production's own otherwise. After a rollback it is the score
recorded with the model it went back to, where that model has one for the set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retrain.exceptions import UnknownAlias
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.registry.registry import Registry
from retrain.report.charts import ScorePoint
from retrain.storage.layout import DECISION_PREFIX, eval_summary_key
from retrain.storage.object_store import ObjectStore

__all__ = ["HistoryPoint", "score_history_of"]

NIGHTS = 30


@dataclass(frozen=True)
class HistoryPoint:
    """One point of the history, with what a person needs to find the night again."""

    at: datetime
    night: str
    eval_set: str
    score: float
    event: str  # "promoted", "rejected" or "rolled back"
    model_id: str
    run_id: str

    def chart_point(self) -> ScorePoint:
        return ScorePoint(self.night, self.score, self.event)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "night": self.night,
            "eval_set": self.eval_set,
            "score": self.score,
            "event": self.event,
            "model_id": self.model_id,
            "run_id": self.run_id,
        }


def _night_of(run_id: str, at: datetime) -> str:
    return run_id.removeprefix("retrain-") if run_id.startswith("retrain-") else f"{at:%Y-%m-%d}"


def _set_run(run_id: str, eval_set: str, primary: str) -> str:
    return run_id if eval_set == primary else f"{run_id}-{eval_set}"


def _decided(store: ObjectStore, eval_set: str, primary: str, nights: int) -> list[HistoryPoint]:
    points = []
    for record in store.iter_json(DECISION_PREFIX, newest=nights + 1):
        if "promote" not in record or not record.get("decided_at"):
            continue  # the LAST.json pointer
        at = datetime.fromisoformat(record["decided_at"])
        promoted = bool(record["promote"])
        winner = CANDIDATE if promoted else PRODUCTION
        model_id = str(record[winner]["model_id"])
        if eval_set == primary:
            score = float(record["candidate_score" if promoted else "production_score"])
        else:
            run = _set_run(record["run_id"], eval_set, primary)
            summary = store.get_json_or_none(eval_summary_key(run))
            if summary is None or winner not in summary.get("models", {}):
                continue
            score = float(summary["models"][winner]["mean"])
        event = "promoted" if promoted else "rejected"
        points.append(
            HistoryPoint(
                at, _night_of(record["run_id"], at), eval_set, score, event, model_id, record["run_id"]
            )
        )
    return points


def _rollbacks(registry: Registry, eval_set: str) -> list[HistoryPoint]:
    try:
        events = registry.history(PRODUCTION)
    except UnknownAlias:
        return []
    return [
        HistoryPoint(
            event.at,
            f"{event.at:%Y-%m-%d}",
            eval_set,
            event.model.scores[eval_set],
            "rolled back",
            event.model.model_id,
            event.run_id or "",
        )
        for event in events
        if event.action == "rollback" and eval_set in event.model.scores
    ]


def score_history_of(
    store: ObjectStore, eval_set: str, *, primary: str, nights: int = NIGHTS
) -> list[HistoryPoint]:
    """The newest ``nights`` points of production's score on ``eval_set``, oldest first."""
    points = _decided(store, eval_set, primary, nights) + _rollbacks(Registry(store), eval_set)
    return sorted(points, key=lambda p: p.at)[-nights:]
