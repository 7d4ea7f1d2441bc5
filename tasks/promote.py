"""Prefect tasks for the promotion decision and the alias move (logic in retrain.promote)."""

from __future__ import annotations

from dataclasses import replace

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from retrain.evaluate.results import EvalReport
from retrain.promote.comparison import GateSets
from retrain.promote.decision import Decision, promotion_decision, record_superseded
from retrain.promote.outcome import Outcome
from retrain.promote.promotion import apply_decision, production_or_base
from retrain.registry.registry import ModelRecord
from tasks.context import task_context
from tasks.registry import announce_alias_change
from tasks.retry import IO_TASK

__all__ = ["apply_promotion_decision", "decide_promotion", "read_production"]


@task(name="read-production", **IO_TASK)
def read_production() -> ModelRecord:
    """The model `production` points to; fails (ConfigError) unless its provider is configured
    with its key, since it is evaluated there."""
    context = task_context()
    record = production_or_base(context.registry, context.settings)
    context.provider(record.provider)
    get_run_logger().info("production is %s (provider %s)", record.model_id, record.provider)
    return record


@task(name="decide-promotion", cache_policy=NO_CACHE)
def decide_promotion(
    reports: GateSets[EvalReport],
    candidate: ModelRecord,
    production: ModelRecord,
    *,
    dataset_version: str,
    run_id: str,
    migration: str | None = None,
) -> Decision:
    """The gate's decision on the eval reports (no I/O, so no retries; recording it is a task of its own)."""
    decision = promotion_decision(
        reports,
        candidate,
        production,
        task_context().settings.evaluation,
        dataset_version=dataset_version,
        run_id=run_id,
        migration=migration,
    )
    verdict = Outcome.of_decision(decision.promote).value
    get_run_logger().info("%s %s: %s", verdict, candidate.model_id, decision.reason)
    return decision


@task(name="apply-promotion-decision", **IO_TASK)
def apply_promotion_decision(decision: Decision) -> Decision:
    """Move `production` if the decision says so and production is still the model it was compared
    with; publish the ``promotion-decision`` artifact. The decision as applied: a superseded one is
    recorded as such (not promoted)."""
    context = task_context()
    promotion = apply_decision(context.registry, decision, actor="nightly-retrain")
    if promotion.moved and promotion.event is not None:
        announce_alias_change(promotion.event)
    if promotion.superseded:
        get_run_logger().warning(promotion.summary())
        decision = record_superseded(
            context.store, decision, promotion.after.model_id if promotion.after else None
        )
        promotion = replace(promotion, decision=decision)
    create_markdown_artifact(
        promotion.to_markdown(), key="promotion-decision", description=decision.reason[:500]
    )
    if not promotion.superseded:
        get_run_logger().info(promotion.summary())
    return decision
