"""`retrain eval`: compare a candidate with production on an eval set and its guardrails, with the gate.

The roles are named, never inferred from order: ``--candidate`` and ``--production`` each take an
alias or a model id, and the output shows each name as typed beside the model it resolved to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from retrain.cli.credentials import with_credentials
from retrain.cli.output import Rows, plain_console
from retrain.config.settings import Settings, get_settings
from retrain.evaluate.eval_sets import load_eval_set
from retrain.evaluate.results import ALL, EvalReport
from retrain.evaluate.runner import run_evaluation
from retrain.evaluate.spend import EvalCost
from retrain.evaluate.targets import ModelTarget, resolve_target
from retrain.promote.gate import GateDecision, decide_reports
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.report.comparison import compare, significance_in_words
from retrain.storage.layout import EVALS_PREFIX
from retrain.storage.object_store import ObjectStore
from retrain.train.budget import budget_evaluations, count_evaluation

__all__ = ["register"]

_console = plain_console()
_progress_console = Console(stderr=True)


def _score_rows(reports: list[EvalReport]) -> Rows:
    rows = Rows("Scores", ("Set", "Grader", "Items", "Candidate", "Production", "Difference"))
    for report in reports:
        one_grader = len(report.models[CANDIDATE].by_grader) == 1
        for row in report.comparison(CANDIDATE, PRODUCTION):
            if one_grader and row["grader"] == ALL:
                continue  # its one grader's row is already the whole set
            rows.add_row(
                row["set"],
                row["grader"],
                str(row["items"]),
                f"{row[CANDIDATE]:.4f}",
                f"{row[PRODUCTION]:.4f}",
                f"{row['delta']:+.4f}",
            )
    return rows


def _check_rows(decision: GateDecision) -> Rows:
    rows = Rows("Gate checks", ("Check", "Result", "Observed", "Threshold", "Detail"))
    for check in decision.checks:
        observed = f"{check.observed:.4g}" if isinstance(check.observed, float) else str(check.observed)
        threshold = f"{check.threshold:.4g}" if isinstance(check.threshold, float) else str(check.threshold)
        rows.add_row(check.name, "pass" if check.passed else "FAIL", observed, threshold, check.detail)
    return rows


def _advance(bar: Progress, task: TaskID) -> Callable[[int, int], None]:
    return lambda done, _total: bar.update(task, completed=done)


def _evaluate(
    store: ObjectStore, targets: list[ModelTarget], names: list[str], settings: Settings, run_id: str
) -> dict[str, EvalReport]:
    reports: dict[str, EvalReport] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    sets = {f"{run_id}-{name}": load_eval_set(store, name) for name in names}
    today = datetime.now(UTC).date()
    estimate = budget_evaluations(store, sets, [t.model_id for t in targets], settings.evaluation, today)
    _console.print(f"estimated cost {estimate.line}", highlight=False)
    counted: list[EvalCost] = []

    def count(report: EvalReport) -> None:  # also for an attempt that failed with too many errors
        counted.append(count_evaluation(store, report, settings.evaluation, today))

    with Progress(*columns, console=_progress_console, transient=True) as bar:
        for set_run, items in sets.items():
            task = bar.add_task(items.name, total=len(targets) * len(items.items))
            reports[items.name] = run_evaluation(
                store,
                targets,
                items,
                settings.evaluation,
                run_id=set_run,
                progress=_advance(bar, task),
                on_report=count,
            )
    _console.print(f"cost {EvalCost.total(counted).line}", highlight=False)
    return reports


def evaluate_command(
    candidate: Annotated[
        str | None,
        typer.Option(
            "--candidate",
            help="The model that would replace production: an alias or a model id. Required.",
            show_default=False,
        ),
    ] = None,
    production: Annotated[
        str, typer.Option("--production", help="The model it is compared with: an alias or a model id.")
    ] = PRODUCTION,
    eval_set: Annotated[
        str | None, typer.Option("--set", help="Primary eval set (default: RETRAIN_EVALUATION__EVAL_SET).")
    ] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", hidden=True)] = None,
) -> None:
    """Evaluate a candidate and production on the same items; say whether the gate would promote it."""
    if model:
        raise typer.BadParameter(
            "--model is gone, so that roles never depend on order: use --candidate MODEL --production MODEL",
            param_hint="--model",
        )
    if candidate is None:
        raise typer.BadParameter("name the model to evaluate: --candidate MODEL", param_hint="--candidate")
    settings = get_settings()
    store = ObjectStore.from_settings(settings.s3)
    named = {CANDIDATE: candidate, PRODUCTION: production}
    targets = []
    for label, name in named.items():
        target = resolve_target(store, name, label, settings)
        targets.append(replace(target, provider=with_credentials(target.provider)))
    for t in targets:  # a line each, so that ids are never folded
        typed = t.model_id if named[t.label] == t.model_id else f"{named[t.label]} = {t.model_id}"
        _console.print(f"{t.label:<10}  {typed}", soft_wrap=True)
    primary = eval_set or settings.evaluation.eval_set
    run_id = f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    reports = _evaluate(
        store, targets, list(dict.fromkeys([primary, *settings.evaluation.guardrails])), settings, run_id
    )
    guardrails = {name: report for name, report in reports.items() if name != primary}
    decision = decide_reports(reports[primary], guardrails, settings.evaluation)
    _score_rows(list(reports.values())).print(_console)
    _console.print(
        f"{primary}: {significance_in_words(compare(reports[primary], settings.evaluation))}", soft_wrap=True
    )
    _console.print(f"gate mode: {decision.mode} (RETRAIN_EVALUATION__GATE_MODE)", highlight=False)
    _check_rows(decision).print(_console)
    cand, prod = (t.model_id for t in targets)
    verdict = (
        f"Would be promoted: production would move from {prod} to {cand}"
        if decision.promote
        else f"Would be rejected: production stays {prod}"
    )
    _console.print(f"{verdict}. {decision.reason}", soft_wrap=True)
    _console.print(f"results: {store.uri(f'{EVALS_PREFIX}{run_id}-{primary}/')}", soft_wrap=True)


def register(root: typer.Typer) -> None:
    root.command("eval")(evaluate_command)
