"""What to train tonight: the newest dataset version, unless it was decided already, failed
permanently, or adds too little.

``training_history`` reads what the plan needs from the bucket (the newest dataset version, the
decision on it or its permanent failure, or else how many examples the version decided last
had); ``plan_training`` is the pure rule over it. A version with a decision or a permanent
failure is never trained again.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrain.curate.dataset import DatasetVersion, latest_version, load_version
from retrain.promote.decision import Decision, last_decided_version, load_decision
from retrain.promote.outcome import Outcome
from retrain.promote.promotion import promotion_key
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore
from retrain.train.failures import PermanentFailure, load_failure

__all__ = ["TrainingHistory", "TrainingPlan", "plan_training", "training_history"]


@dataclass(frozen=True)
class TrainingHistory:
    """What the bucket says about the newest dataset version.

    ``decision`` is the decision on ``version``, if any, and ``failure`` its permanent training
    failure, if it had one (``retrain.train.failures``); ``promotion_pending`` whether it
    promotes and `production` has not been moved for it yet (a crash in between);
    ``previous_examples`` how many examples the version decided last had (0 before the first
    decision; only read while ``version`` is undecided); ``migration`` the backend a migration
    night trains on, which trains the version whatever it adds.
    """

    version: DatasetVersion | None
    decision: Decision | None = None
    failure: PermanentFailure | None = None
    promotion_pending: bool = False
    previous_examples: int = 0
    migration: str | None = None


@dataclass(frozen=True)
class TrainingPlan:
    """Whether to train tonight; when not, the night's outcome (``NoNewData``, ``TooFewExamples``)."""

    version: DatasetVersion | None
    train: bool
    reason: str
    decided: Decision | None = None
    outcome: Outcome | None = None


def training_history(store: ObjectStore, registry: Registry, migration: str | None = None) -> TrainingHistory:
    """Read the newest dataset version and what was decided, reading no more than the plan needs.

    For a migration to another backend (``migration``), what was decided is that migration's
    decision on the version, and a failure on the old backend does not count.
    """
    version = latest_version(store)
    if version is None:
        return TrainingHistory(None)
    decision = load_decision(store, version.version_id, migration)
    if decision is not None:
        pending = decision.promote and promotion_key(decision) not in registry.state().idempotency
        return TrainingHistory(version, decision, promotion_pending=pending, migration=migration)
    failure = None if migration else load_failure(store, version.version_id)
    if failure is not None:
        return TrainingHistory(version, failure=failure)
    if migration:
        return TrainingHistory(version, migration=migration)
    previous = last_decided_version(store)
    examples = load_version(store, previous).examples if previous is not None else 0
    return TrainingHistory(version, previous_examples=examples)


def plan_training(history: TrainingHistory, min_new_examples: int) -> TrainingPlan:
    """Train the newest dataset version unless it was decided already, failed permanently, or
    adds fewer than ``min_new_examples`` examples since the last decision.

    A promotion that was decided but not applied comes back as ``decided`` so the flow finishes it.
    """
    version = history.version
    if version is None:
        return TrainingPlan(
            None,
            False,
            "no curated data yet: put chat JSONL files under incoming/",
            outcome=Outcome.NO_NEW_DATA,
        )
    done = history.decision
    if done is not None:
        verdict = "superseded" if done.superseded else "promoted" if done.promote else "rejected"
        return TrainingPlan(
            version,
            False,
            f"no new data: dataset version {version.version_id} was already {verdict}",
            done if history.promotion_pending else None,
            Outcome.NO_NEW_DATA,
        )
    if history.failure is not None:
        return TrainingPlan(
            version,
            False,
            f"no new data: dataset version {version.version_id} is not trained again, its "
            f"{history.failure.summary}; new examples make a new version",
            outcome=Outcome.NO_NEW_DATA,
        )
    if history.migration:
        return TrainingPlan(
            version,
            True,
            f"migration to {history.migration}: training dataset version {version.version_id} "
            f"({version.examples} examples) there",
        )
    new = version.examples - history.previous_examples
    if new < min_new_examples:
        return TrainingPlan(
            version,
            False,
            f"only {new} new example(s) since the last decision (minimum {min_new_examples}, "
            "RETRAIN_VALIDATION__MIN_NEW_EXAMPLES): not training tonight; they are kept for the next run",
            outcome=Outcome.TOO_FEW_EXAMPLES,
        )
    return TrainingPlan(version, True, f"{new} new example(s): training dataset version {version.version_id}")
