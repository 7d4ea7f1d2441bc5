"""What validating a batch gives: the accepted examples, the quarantined lines, counts and gates."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retrain.validate.expectations import GateCheck
from retrain.validate.reason import Reason

__all__ = ["AcceptedExample", "BatchResult", "QuarantinedLine", "SourceCounts"]


@dataclass
class AcceptedExample:
    source: str
    line_no: int
    example: dict[str, Any]
    hash: str
    n_tokens: int


@dataclass
class QuarantinedLine:
    """A line that will not be trained on; ``raw`` is its text as read (may hold a secret)."""

    source: str
    line_no: int
    raw: str
    reasons: list[Reason]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line_no": self.line_no,
            "reasons": [asdict(reason) for reason in self.reasons],
            "raw": self.raw,
        }


@dataclass
class SourceCounts:
    lines_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    blank_lines: int = 0


@dataclass
class BatchResult:
    accepted: list[AcceptedExample]
    quarantined: list[QuarantinedLine]
    per_source: dict[str, SourceCounts]
    by_reason: dict[str, int]
    gates: list[GateCheck]
    token_stats: dict[str, float]
    cost_estimate_usd: float | None
    cost: dict[str, Any] = field(default_factory=dict)
    reason_examples: dict[str, str] = field(default_factory=dict)
    """Per reason code, its first line's message (redacted, cut short): the counts and limits behind it."""
    data_docs_index: Path | None = None
    """The index.html of the Data Docs built for this batch (None when none were asked for or built)."""

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    @property
    def lines_read(self) -> int:
        return sum(counts.lines_read for counts in self.per_source.values())

    @property
    def n_accepted(self) -> int:
        return sum(counts.accepted for counts in self.per_source.values())

    @property
    def n_quarantined(self) -> int:
        return sum(counts.quarantined for counts in self.per_source.values())

    def failed_gates(self) -> list[GateCheck]:
        return [gate for gate in self.gates if not gate.passed]

    def summary(self) -> dict[str, Any]:
        """JSON-able summary without any example text (safe for artifacts and reports)."""
        return {
            "passed": self.passed,
            "total_lines": self.lines_read,
            "accepted": self.n_accepted,
            "quarantined": self.n_quarantined,
            "by_reason": dict(sorted(self.by_reason.items())),
            "reason_examples": dict(sorted(self.reason_examples.items())),
            "per_source": {name: asdict(counts) for name, counts in self.per_source.items()},
            "token_stats": self.token_stats,
            "cost_estimate_usd": self.cost_estimate_usd,
            "cost": self.cost,
            "gates": [gate.to_json() for gate in self.gates],
            "data_docs_index": str(self.data_docs_index) if self.data_docs_index else None,
        }
