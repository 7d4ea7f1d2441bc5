"""Prefect tasks that evaluate models on eval sets (logic in retrain.evaluate.runner)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from retrain.config.settings import get_settings
from retrain.config.stage_settings import OrchestrationSettings
from retrain.evaluate.eval_sets import load_eval_set
from retrain.evaluate.results import EvalReport
from retrain.evaluate.runner import run_evaluation
from retrain.evaluate.targets import ModelTarget, resolve_target
from retrain.promote.comparison import GateSets, gate_runs, gate_targets
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.registry.records import ModelRecord
from retrain.report.comparison import artifact_key, compare, comparison_markdown
from retrain.train.budget import budget_evaluations, count_evaluation
from tasks.context import task_context
from tasks.credentials import provider_with_credentials
from tasks.progress import TaskProgress
from tasks.retry import IO_TASK

__all__ = [
    "check_evaluation_cost",
    "evaluate_candidate",
    "evaluate_gate_sets",
    "evaluate_models",
    "evaluate_sets",
    "evaluation_task_runner",
    "resolve_targets",
]


@task(name="resolve-targets", **IO_TASK)
def resolve_targets(candidate: str, production: str) -> list[ModelTarget]:
    """The two models to compare, labelled ``candidate`` and ``production``: a registry alias
    becomes the model it points to, any other name is a model id."""
    context = task_context()
    return [
        resolve_target(context.store, candidate, CANDIDATE, context.settings),
        resolve_target(context.store, production, PRODUCTION, context.settings),
    ]


@task(name="check-evaluation-cost", **IO_TASK)
def check_evaluation_cost(targets: Sequence[ModelTarget], runs: Mapping[str, str]) -> float:
    """Estimate tonight's evaluation (every set, every model, the judge) before anything is asked;
    refuse it (BudgetExceeded) above RETRAIN_EVALUATION__MAX_EVAL_COST_USD. The estimate in dollars."""
    context = task_context()
    sets = {run_id: load_eval_set(context.store, name) for name, run_id in runs.items()}
    evaluation = context.settings.evaluation
    total = budget_evaluations(
        context.store, sets, [t.model_id for t in targets], evaluation, datetime.now(UTC).date()
    )
    limit = (
        "no limit" if evaluation.max_eval_cost_usd is None else f"limit ${evaluation.max_eval_cost_usd:,.2f}"
    )
    get_run_logger().info("estimated evaluation cost %s (%s)", total.line, limit)
    return total.usd


@task(name="evaluate-models", **IO_TASK)
def evaluate_models(targets: Sequence[ModelTarget], eval_set_name: str, run_id: str) -> EvalReport:
    """Ask every target every item of the set; a retry reuses the answers already cached."""
    context = task_context()
    targets = [replace(t, provider=provider_with_credentials(t.provider)) for t in targets]
    logger = get_run_logger()
    eval_set = load_eval_set(context.store, eval_set_name)
    progress = TaskProgress(
        f"evaluating {len(targets)} model(s) on {eval_set_name}",
        key=artifact_key("eval-progress", eval_set_name),
    )

    def count(done: EvalReport) -> None:  # also for an attempt that failed with too many errors
        cost = count_evaluation(context.store, done, context.settings.evaluation, datetime.now(UTC).date())
        logger.info("evaluation of %s cost %s", eval_set_name, cost.line)

    report = run_evaluation(
        context.store,
        targets,
        eval_set,
        context.settings.evaluation,
        run_id=run_id,
        progress=lambda done, total: progress.update(done, total, f"{done}/{total} answers graded"),
        on_report=count,
    )
    labels = set(report.models)
    if {CANDIDATE, PRODUCTION} <= labels:
        create_markdown_artifact(
            comparison_markdown(compare(report, context.settings.evaluation), heading="#"),
            key=artifact_key("eval-comparison", eval_set_name),
            description=f"{eval_set_name} (version {report.eval_version[:12]}), run {run_id}",
        )
    for scores in report.models.values():
        logger.info(
            "%s %s: mean %.4f on %d items", scores.label, scores.model_id, scores.mean, len(scores.scores)
        )
    return report


def evaluation_task_runner(orchestration: OrchestrationSettings) -> TaskRunner[Any]:
    """Threads, or Dask (``RETRAIN_ORCHESTRATION__TASK_RUNNER=dask``): a cluster's address or a local one."""
    if orchestration.task_runner == "dask":
        from prefect_dask.task_runners import DaskTaskRunner

        if orchestration.dask_address:
            return DaskTaskRunner(address=orchestration.dask_address)
        cluster = {"n_workers": orchestration.dask_workers, "processes": True, "dashboard_address": None}
        return DaskTaskRunner(cluster_kwargs=cluster)
    return ThreadPoolTaskRunner()


def evaluate_sets(targets: Sequence[ModelTarget], runs: Mapping[str, str]) -> dict[str, EvalReport]:
    """Evaluate several eval sets (name -> run id) at once on the configured task runner."""
    with evaluation_task_runner(get_settings().orchestration) as runner:
        futures = {
            name: runner.submit(
                evaluate_models, {"targets": list(targets), "eval_set_name": name, "run_id": run_id}
            )
            for name, run_id in runs.items()
        }
        return {name: future.result() for name, future in futures.items()}


def evaluate_gate_sets(targets: Sequence[ModelTarget], runs: GateSets[str]) -> GateSets[EvalReport]:
    """The reports the gate reads: the main set and each guardrail set, each in its eval run,
    once their estimated cost is within the limit."""
    check_evaluation_cost(list(targets), runs.by_set())
    return GateSets.split(evaluate_sets(targets, runs.by_set()), runs.main_set)


def evaluate_candidate(candidate: ModelRecord, production: ModelRecord, run_id: str) -> GateSets[EvalReport]:
    """Tonight's candidate and production, on the main eval set (in eval run ``run_id``) and each
    guardrail set (in ``{run_id}-{set}``)."""
    settings = get_settings()
    evaluation = settings.evaluation
    runs = gate_runs(run_id, evaluation.eval_set, evaluation.guardrails, main_run=run_id)
    return evaluate_gate_sets(gate_targets(candidate, production, settings), runs)
