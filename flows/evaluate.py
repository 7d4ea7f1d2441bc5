"""Compare any two models (or registry aliases) on an eval set and its guardrails, with the gate."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from retrain.config.settings import get_settings
from retrain.evaluate.targets import resolve_target
from retrain.promote.gate import GateDecision, decide_reports
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.storage.object_store import ObjectStore
from tasks.evaluate import evaluate_sets

__all__ = ["evaluate"]


@flow(name="evaluate")
def evaluate(model_a: str, model_b: str, eval_set: str = "main") -> GateDecision:
    """Would model_a (the candidate) be promoted over model_b (production)? Nothing is promoted here."""
    settings = get_settings()
    store = ObjectStore.from_settings(settings.s3)
    targets = [
        resolve_target(store, model_a, CANDIDATE, settings),
        resolve_target(store, model_b, PRODUCTION, settings),
    ]
    run_id = f"compare-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    guardrails = evaluate_sets(
        targets,
        {eval_set: f"{run_id}-{eval_set}"}
        | {name: f"{run_id}-{name}" for name in settings.evaluation.guardrails},
    )
    main = guardrails.pop(eval_set)
    decision = decide_reports(main, guardrails, settings.evaluation)
    create_markdown_artifact(
        key="eval-decision", markdown=decision.to_markdown(), description=decision.reason
    )
    get_run_logger().info(decision.reason)
    return decision
