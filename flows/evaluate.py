"""Compare any two models (or registry aliases) on an eval set and its guardrails, with the gate."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from retrain.config.settings import get_settings
from retrain.promote.comparison import gate_runs
from retrain.promote.gate import GateDecision, decide_reports
from retrain.registry.aliases import PRODUCTION
from tasks.evaluate import evaluate_gate_sets, resolve_targets

__all__ = ["evaluate"]


@flow(name="evaluate")
def evaluate(candidate: str, production: str = PRODUCTION, eval_set: str = "main") -> GateDecision:
    """Would ``candidate`` be promoted over ``production`` (each an alias or a model id)? Nothing is
    promoted here; the roles are named, never taken from the order of the parameters."""
    settings = get_settings().evaluation
    targets = resolve_targets(candidate, production)
    run_id = f"compare-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    reports = evaluate_gate_sets(targets, gate_runs(run_id, eval_set, settings.guardrails))
    decision = decide_reports(reports.main, reports.guardrails, settings)
    create_markdown_artifact(
        key="eval-decision", markdown=decision.to_markdown(), description=decision.reason
    )
    get_run_logger().info(decision.reason)
    return decision
