"""Prefect tasks that read the eval set's prompts and build the training files."""

from __future__ import annotations

from prefect import get_run_logger, task

from retrain.curate.dataset import load_version
from retrain.curate.training_files import TrainingFiles, build_training_files
from retrain.evaluate.eval_sets import load_eval_set
from retrain.validate.canonical import normalise_prompt
from tasks.context import task_context
from tasks.retry import IO_TASK

__all__ = ["load_eval_prompts", "prepare_training_files"]


@task(name="load-eval-prompts", **IO_TASK)
def load_eval_prompts() -> frozenset[str]:
    """The normalised prompts of every item of the main and the guardrail eval sets: training must
    never see them."""
    context = task_context()
    store, evaluation = context.store, context.settings.evaluation
    prompts: set[str] = set()
    for name in [evaluation.eval_set, *evaluation.guardrails]:
        eval_set = load_eval_set(store, name)
        prompts.update(normalise_prompt(item.prompt_messages) for item in eval_set.items)
        get_run_logger().info(
            "eval set %s: %d items (version %s)", name, len(eval_set.items), eval_set.version[:12]
        )
    return frozenset(prompts)


@task(name="prepare-training-files", **IO_TASK)
def prepare_training_files(version_id: str, prompts: frozenset[str]) -> TrainingFiles:
    store = task_context().store
    files = build_training_files(
        store,
        load_version(store, version_id),
        eval_prompts=prompts,
        prompt_of=lambda example: normalise_prompt(example.get("messages", [])),
    )
    get_run_logger().info(
        "dataset version %s: %d training + %d validation examples (%d left out: eval items; "
        "%d left out by the training-set policy %s)",
        version_id,
        files.train_examples,
        files.validation_examples,
        files.excluded_for_eval_leak,
        files.excluded_by_policy,
        files.policy,
    )
    return files
