"""What an eval run found: each item's result, each model's scores, and the run's report."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from retrain.evaluate.graders import Grade
from retrain.registry.aliases import CANDIDATE, PRODUCTION

__all__ = ["ALL", "EvalReport", "ItemResult", "ModelScores"]

ALL = "all"


@dataclass
class ItemResult:
    item_id: str
    output: str | None
    grade: Grade
    latency_s: float
    usage: dict[str, Any] | None
    error: str | None
    cached: bool
    grader: str = "exact_match"

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record.update(record.pop("grade"))
        return record


@dataclass
class ModelScores:
    label: str
    model_id: str
    scores: list[float]
    passed: list[bool]
    mean: float
    eval_set: str = ""
    item_ids: list[str] = field(default_factory=list)
    by_grader: dict[str, float] = field(default_factory=dict)
    errors: int = 0

    @property
    def pass_rate(self) -> float:
        return sum(self.passed) / len(self.passed) if self.passed else 0.0

    @classmethod
    def from_results(
        cls, label: str, model_id: str, eval_set: str, results: Sequence[ItemResult]
    ) -> ModelScores:
        scores = [r.grade.score for r in results]
        per_grader: dict[str, list[float]] = defaultdict(list)
        for r in results:
            per_grader[r.grader].append(r.grade.score)
        return cls(
            label=label,
            model_id=model_id,
            scores=scores,
            passed=[r.grade.passed for r in results],
            mean=sum(scores) / len(scores) if scores else 0.0,
            eval_set=eval_set,
            item_ids=[r.item_id for r in results],
            by_grader={name: sum(v) / len(v) for name, v in sorted(per_grader.items())},
            errors=sum(r.error is not None for r in results),
        )


@dataclass
class EvalReport:
    run_id: str
    eval_set: str
    eval_version: str
    models: dict[str, ModelScores]
    results: dict[str, list[ItemResult]]
    # tokens sent (answers not from the cache, judge calls included), by model id:
    # {"prompt_tokens": n, "completion_tokens": n, "requests": n}
    usage: dict[str, dict[str, int]] = field(default_factory=dict)

    def comparison(self, candidate: str = CANDIDATE, production: str = PRODUCTION) -> list[dict[str, Any]]:
        """Rows (set, grader, items, candidate, production, delta): one per grader, then all items."""
        cand, prod = self.models[candidate], self.models[production]
        counts: dict[str, int] = defaultdict(int)
        for r in self.results[candidate]:
            counts[r.grader] += 1
        rows = [
            (grader, counts[grader], cand.by_grader[grader], prod.by_grader.get(grader, 0.0))
            for grader in cand.by_grader
        ]
        rows.append((ALL, len(cand.scores), cand.mean, prod.mean))
        return [
            {
                "set": self.eval_set,
                "grader": grader,
                "items": n,
                candidate: round(c, 4),
                production: round(p, 4),
                "delta": round(c - p, 4),
            }
            for grader, n, c, p in rows
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "eval_set": self.eval_set,
            "eval_version": self.eval_version,
            "models": {
                label: {
                    "model_id": s.model_id,
                    "items": len(s.scores),
                    "mean": s.mean,
                    "pass_rate": s.pass_rate,
                    "by_grader": s.by_grader,
                    "errors": s.errors,
                    "cached": sum(r.cached for r in self.results[label]),
                }
                for label, s in self.models.items()
            },
            "usage": self.usage,
        }
