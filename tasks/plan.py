"""Prefect tasks that plan tonight's training: the reads, then the pure plan (logic in retrain.train.plan)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from retrain.train import plan
from retrain.train.plan import TrainingHistory, TrainingPlan, training_history
from tasks.context import task_context
from tasks.retry import IO_TASK

__all__ = ["plan_training", "read_training_history"]


@task(name="read-training-history", **IO_TASK)
def read_training_history(migration: str | None = None) -> TrainingHistory:
    """The newest dataset version and what was decided about it, or before it (by the migration
    to another backend, for a migration night)."""
    context = task_context()
    return training_history(context.store, context.registry, migration)


@task(name="plan-training", cache_policy=NO_CACHE)
def plan_training(history: TrainingHistory) -> TrainingPlan:
    """Whether to train tonight, and on which dataset version (no I/O, so no retries)."""
    tonight = plan.plan_training(history, task_context().settings.validation.min_new_examples)
    get_run_logger().info(tonight.reason)
    return tonight
