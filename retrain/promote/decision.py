"""What to train tonight, and what was decided about each dataset version.

Each dataset version gets at most one decision, recorded create-only at
``state/decisions/{version_id}.json`` (promote or reject, both scores, the reason and the
gate's checks). A version with a decision is never trained again; ``state/decisions/LAST.json``
points at the newest decision so "new examples since the last decision" can be counted.
Promotion moves the ``production`` alias with an idempotency key derived from the
candidate, so a re-run after a crash never promotes twice.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from retrain.config.settings import Settings
from retrain.curate.dataset import DatasetVersion, latest_version, load_version
from retrain.exceptions import AlreadyExists
from retrain.registry.aliases import PRODUCTION
from retrain.registry.registry import ModelRecord, Registry, RegistryEvent
from retrain.storage.object_store import ObjectStore

__all__ = [
    "Decision",
    "TrainingPlan",
    "apply_decision",
    "load_decision",
    "plan_training",
    "production_or_base",
    "save_decision",
]

logger = logging.getLogger(__name__)

DECISION_PREFIX = "state/decisions/"
LAST_DECISION_KEY = f"{DECISION_PREFIX}LAST.json"


@dataclass(frozen=True)
class TrainingPlan:
    version: DatasetVersion | None
    train: bool
    reason: str
    decided: Decision | None = None


@dataclass(frozen=True)
class Decision:
    dataset_version: str
    run_id: str
    job_id: str
    candidate: dict[str, Any]
    production: dict[str, Any]
    promote: bool
    reason: str
    candidate_score: float
    production_score: float
    report_markdown: str
    decided_at: str = ""
    approval: dict[str, Any] | None = None

    @property
    def candidate_record(self) -> ModelRecord:
        return ModelRecord.model_validate(self.candidate)


def plan_training(store: ObjectStore, settings: Settings, registry: Registry) -> TrainingPlan:
    """Train the newest dataset version unless it was decided already or adds too little.

    A promotion that was decided but not applied (a crash in between) comes back as
    ``decided`` so the flow finishes it.
    """
    version = latest_version(store)
    if version is None:
        return TrainingPlan(None, False, "no curated data yet: put chat JSONL files under incoming/")
    done = load_decision(store, version.version_id)
    if done is not None:
        verdict = "promoted" if done.promote else "rejected"
        unfinished = done.promote and _promotion_key(done) not in registry.state().idempotency
        return TrainingPlan(
            version,
            False,
            f"no new data: dataset version {version.version_id} was already {verdict}",
            done if unfinished else None,
        )
    pointer = store.get_json_or_none(LAST_DECISION_KEY)
    previous = load_version(store, pointer["dataset_version"]) if pointer else None
    new = version.examples - (previous.examples if previous else 0)
    minimum = settings.validation.min_new_examples
    if new < minimum:
        return TrainingPlan(
            version,
            False,
            f"only {new} new example(s) since the last decision (minimum {minimum}, "
            "RETRAIN_VALIDATION__MIN_NEW_EXAMPLES): not training tonight; they are kept for the next run",
        )
    return TrainingPlan(version, True, f"{new} new example(s): training dataset version {version.version_id}")


def load_decision(store: ObjectStore, version_id: str) -> Decision | None:
    data = store.get_json_or_none(f"{DECISION_PREFIX}{version_id}.json")
    return None if data is None else Decision(**data)


def save_decision(store: ObjectStore, decision: Decision) -> Decision:
    """Record the decision for its dataset version; the first recorded decision wins."""
    decision = Decision(**{**asdict(decision), "decided_at": datetime.now(UTC).isoformat(timespec="seconds")})
    try:
        store.put_json(
            f"{DECISION_PREFIX}{decision.dataset_version}.json", asdict(decision), create_only=True
        )
    except AlreadyExists:
        existing = load_decision(store, decision.dataset_version)
        assert existing is not None
        logger.info("dataset version %s was already decided; keeping that decision", decision.dataset_version)
        decision = existing
    store.put_json(LAST_DECISION_KEY, {"dataset_version": decision.dataset_version})
    return decision


def production_or_base(registry: Registry, settings: Settings) -> ModelRecord:
    """The model `production` points to; on the first night, the base model itself."""
    current = registry.get(PRODUCTION)
    if current is not None:
        return current
    return ModelRecord(
        model_id=settings.training.base_model,
        provider=settings.provider.name,
        base_model=settings.training.base_model,
    )


def apply_decision(registry: Registry, decision: Decision, *, actor: str) -> RegistryEvent | None:
    """Move `production` to the candidate if the decision says so (idempotent per candidate)."""
    if not decision.promote:
        return None
    return registry.set(
        PRODUCTION,
        decision.candidate_record,
        actor=actor,
        reason=decision.reason,
        action="promote",
        run_id=decision.run_id,
        idempotency_key=_promotion_key(decision),
    )


def _promotion_key(decision: Decision) -> str:
    return f"promote:{decision.candidate_record.model_id}"
