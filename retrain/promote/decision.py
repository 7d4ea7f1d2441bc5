"""The decision record: what was decided about one dataset version, and where it is kept.

Each dataset version gets at most one decision, recorded create-only at
``state/decisions/{version_id}.json`` (promote or reject, the candidate and production records,
both scores, the reason, the gate's checks as markdown and, with approval required, the
approval). A version with a decision is never trained again; ``state/decisions/LAST.json``
points at the newest decision so "new examples since the last decision" can be counted.

The one change a decision record ever gets: a promotion found superseded when it was applied
(`production` no longer pointed at the model the candidate was compared with, e.g. after a
rollback during the approval wait) is rewritten as not promoted, with ``superseded_by`` naming
the model production pointed to (``record_superseded``), so no later night applies it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from retrain.config.stage_settings import EvaluationSettings
from retrain.exceptions import AlreadyExists
from retrain.promote.gate import decide_reports
from retrain.promote.outcome import Outcome
from retrain.registry.records import ModelRecord
from retrain.storage.layout import LAST_DECISION_KEY, decision_key
from retrain.storage.object_store import ObjectStore

if TYPE_CHECKING:
    from retrain.evaluate.results import EvalReport
    from retrain.promote.comparison import GateSets

__all__ = [
    "Approval",
    "Decision",
    "last_decided_version",
    "load_decision",
    "promotion_decision",
    "record_superseded",
    "save_decision",
]

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Approval(BaseModel):
    """Who or what approved or rejected a promotion, stamped when the answer came."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verdict: Literal["approved", "rejected", "not asked"]
    by: str
    via: str
    note: str
    at: str = Field(default_factory=_now)

    @property
    def who(self) -> str:
        """The verdict and who gave it, e.g. ``approved by alice``."""
        return f"{self.verdict} by {self.by}"


class Decision(BaseModel):
    """The decision on one dataset version, as stored (its JSON keys are the field names, in order)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset_version: str
    run_id: str
    job_id: str
    candidate: ModelRecord
    production: ModelRecord
    promote: bool
    reason: str
    candidate_score: float
    production_score: float
    report_markdown: str
    decided_at: str = ""
    approval: Approval | None = None
    # production's model when the promotion was found superseded; absent from the JSON otherwise
    superseded_by: str | None = Field(default=None, exclude_if=lambda value: value is None)
    # the backend a migration night moved to (`retrain migrate --to`); absent from the JSON otherwise
    migration: str | None = Field(default=None, exclude_if=lambda value: value is None)

    @property
    def superseded(self) -> bool:
        return self.superseded_by is not None

    @property
    def outcome(self) -> Outcome:
        """What the night's verdict on this decision is: promoted, rejected or superseded."""
        return Outcome.of_decision(self.promote, superseded=self.superseded)


def promotion_decision(
    reports: GateSets[EvalReport],
    candidate: ModelRecord,
    production: ModelRecord,
    settings: EvaluationSettings,
    *,
    dataset_version: str,
    run_id: str,
    migration: str | None = None,
) -> Decision:
    """The gate's decision on the eval reports, with the candidate's record carrying its score."""
    gate = decide_reports(reports.main, reports.guardrails, settings)
    scored = candidate.model_copy(
        update={"eval_run": run_id, "scores": {reports.main.eval_set: round(gate.candidate_score, 6)}}
    )
    return Decision(
        dataset_version=dataset_version,
        run_id=run_id,
        job_id=candidate.job_id or "",
        candidate=scored,
        production=production,
        promote=gate.promote,
        reason=f"migration to {migration} ({gate.mode}): {gate.reason}" if migration else gate.reason,
        candidate_score=gate.candidate_score,
        production_score=gate.production_score,
        report_markdown=gate.to_markdown(),
        migration=migration,
    )


def load_decision(store: ObjectStore, version_id: str, migration: str | None = None) -> Decision | None:
    data = store.get_json_or_none(decision_key(version_id, migration))
    return None if data is None else Decision.model_validate(data)


def last_decided_version(store: ObjectStore) -> str | None:
    """The dataset version decided last, or None before the first decision."""
    pointer = store.get_json_or_none(LAST_DECISION_KEY)
    return str(pointer["dataset_version"]) if pointer else None


def record_superseded(store: ObjectStore, decision: Decision, current_model_id: str | None) -> Decision:
    """Rewrite a promotion that production moved away from as not promoted (see the module doc)."""
    now = current_model_id or "nothing"
    superseded = decision.model_copy(
        update={
            "promote": False,
            "superseded_by": now,
            "reason": f"superseded: production moved to {now} after {decision.candidate.model_id} was "
            f"compared with {decision.production.model_id}, so nothing was promoted (was: {decision.reason})",
        }
    )
    store.put_json(
        decision_key(decision.dataset_version, decision.migration), superseded.model_dump(mode="json")
    )
    return superseded


def save_decision(store: ObjectStore, decision: Decision) -> Decision:
    """Record the decision for its dataset version; the first recorded decision wins."""
    decision = decision.model_copy(update={"decided_at": _now()})
    try:
        store.put_json(
            decision_key(decision.dataset_version, decision.migration),
            decision.model_dump(mode="json"),
            create_only=True,
        )
    except AlreadyExists:
        existing = load_decision(store, decision.dataset_version, decision.migration)
        assert existing is not None
        logger.info("dataset version %s was already decided; keeping that decision", decision.dataset_version)
        decision = existing
    store.put_json(LAST_DECISION_KEY, {"dataset_version": decision.dataset_version})
    return decision
