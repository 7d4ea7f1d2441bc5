"""Prefect tasks for the promotion decision and the alias move (logic in retrain.promote.decision)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from retrain.evaluate.runner import EvalReport
from retrain.promote.decision import (
    Decision,
    TrainingPlan,
    apply_decision,
    plan_training,
    production_or_base,
    save_decision,
)
from retrain.promote.gate import decide
from retrain.registry.registry import ModelRecord
from tasks.context import task_context
from tasks.registry import announce_alias_change
from tasks.retry import IO_TASK

__all__ = ["apply_promotion", "current_production", "decide_promotion", "plan_tonight"]


@task(name="plan-training", **IO_TASK)
def plan_tonight() -> TrainingPlan:
    context = task_context()
    plan = plan_training(context.store, context.settings, context.registry)
    get_run_logger().info(plan.reason)
    return plan


@task(name="current-production", **IO_TASK)
def current_production() -> ModelRecord:
    """The model `production` points to; fails (ConfigError) unless its provider is configured
    with its key, since it is evaluated there."""
    context = task_context()
    record = production_or_base(context.registry, context.settings)
    context.provider(record.provider)
    get_run_logger().info("production is %s (provider %s)", record.model_id, record.provider)
    return record


@task(name="decide-promotion", **IO_TASK)
def decide_promotion(
    main: EvalReport,
    guardrails: dict[str, EvalReport],
    candidate: ModelRecord,
    production: ModelRecord,
    *,
    dataset_version: str,
    run_id: str,
    save: bool = True,
) -> Decision:
    """The gate's decision, recorded create-only unless ``save`` is false (approval records it later)."""
    context = task_context()
    gate = decide(
        main.models["candidate"],
        main.models["production"],
        context.settings.evaluation,
        guardrails={name: (r.models["candidate"], r.models["production"]) for name, r in guardrails.items()},
    )
    scored = candidate.model_copy(
        update={"eval_run": run_id, "scores": {main.eval_set: round(gate.candidate_score, 6)}}
    )
    decision = Decision(
        dataset_version=dataset_version,
        run_id=run_id,
        job_id=candidate.job_id or "",
        candidate=scored.model_dump(mode="json"),
        production=production.model_dump(mode="json"),
        promote=gate.promote,
        reason=gate.reason,
        candidate_score=gate.candidate_score,
        production_score=gate.production_score,
        report_markdown=gate.to_markdown(),
    )
    if save:
        decision = save_decision(context.store, decision)
    verdict = "PROMOTE" if decision.promote else "REJECT"
    get_run_logger().info("%s %s: %s", verdict, candidate.model_id, decision.reason)
    return decision


@task(name="apply-promotion-decision", **IO_TASK)
def apply_promotion(decision: Decision) -> None:
    registry = task_context().registry
    before = registry.get("production")
    event = apply_decision(registry, decision, actor="nightly-retrain")
    after = registry.get("production")
    moved = event is not None and before != after
    if moved and event is not None:
        announce_alias_change(event)
    lines = [
        decision.report_markdown,
        "",
        "## Alias `production`",
        "",
        "| | model |",
        "| --- | --- |",
        f"| before | `{before.model_id if before else '-'}` |",
        f"| after | `{after.model_id if after else '-'}` |",
    ]
    create_markdown_artifact("\n".join(lines), key="promotion-decision", description=decision.reason[:500])
    logger = get_run_logger()
    if moved:
        logger.info(
            "production: %s -> %s", before.model_id if before else "-", after.model_id if after else "-"
        )
    else:
        logger.info("production stays %s", before.model_id if before else "unset (base model)")
