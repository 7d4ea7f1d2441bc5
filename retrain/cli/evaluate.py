"""`retrain eval`: compare two models or aliases on an eval set and its guardrails, with the gate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from retrain.cli.credentials import with_credentials
from retrain.config.settings import get_settings
from retrain.evaluate.eval_sets import load_eval_set
from retrain.evaluate.runner import EvalReport, resolve_target, run_evaluation
from retrain.promote.gate import GateDecision, decide_reports
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.storage.object_store import ObjectStore

__all__ = ["register"]

console = Console()


def _comparison_table(reports: list[EvalReport], candidate: str, production: str) -> Table:
    table = Table(title=f"{candidate} (candidate) vs {production} (production)")
    for column in ("set", "grader", "items", "candidate", "production", "delta"):
        table.add_column(column, justify="left" if column in ("set", "grader") else "right")
    for report in reports:
        for row in report.comparison(CANDIDATE, PRODUCTION):
            delta = row["delta"]
            colour = "green" if delta > 0 else "red" if delta < 0 else ""
            table.add_row(
                row["set"],
                row["grader"],
                str(row["items"]),
                f"{row[CANDIDATE]:.4f}",
                f"{row[PRODUCTION]:.4f}",
                f"[{colour}]{delta:+.4f}[/]" if colour else f"{delta:+.4f}",
            )
    return table


def _decision_table(decision: GateDecision) -> Table:
    verdict = "[bold green]PROMOTE[/]" if decision.promote else "[bold red]HOLD[/]"
    table = Table(title=f"Promotion gate: {verdict}", caption=decision.reason)
    for column in ("check", "result", "observed", "threshold", "detail"):
        table.add_column(column)
    for check in decision.checks:
        observed = f"{check.observed:.4g}" if isinstance(check.observed, float) else check.observed
        threshold = f"{check.threshold:.4g}" if isinstance(check.threshold, float) else check.threshold
        result = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        table.add_row(check.name, result, observed, threshold, check.detail)
    return table


def _advance(bar: Progress, task: TaskID) -> Callable[[int, int], None]:
    return lambda done, _total: bar.update(task, completed=done)


def evaluate_command(
    model: Annotated[
        list[str],
        typer.Option("--model", "-m", help="Twice: the candidate, then production (model ids or aliases)."),
    ],
    eval_set: Annotated[
        str | None, typer.Option("--set", help="Primary eval set (default: RETRAIN_EVALUATION__EVAL_SET).")
    ] = None,
) -> None:
    """Evaluate two models on the same items and show whether the gate would promote the first."""
    if len(model) != 2:
        raise typer.BadParameter(
            "give exactly two: --model CANDIDATE --model PRODUCTION", param_hint="--model"
        )
    settings = get_settings()
    store = ObjectStore.from_settings(settings.s3)
    targets = [
        replace(target, provider=with_credentials(target.provider))
        for target in (
            resolve_target(store, model[0], CANDIDATE, settings),
            resolve_target(store, model[1], PRODUCTION, settings),
        )
    ]
    primary = eval_set or settings.evaluation.eval_set
    run_id = f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    reports: dict[str, EvalReport] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        for name in dict.fromkeys([primary, *settings.evaluation.guardrails]):
            items = load_eval_set(store, name)
            task = bar.add_task(name, total=len(targets) * len(items.items))
            reports[name] = run_evaluation(
                store,
                targets,
                items,
                settings.evaluation,
                run_id=f"{run_id}-{name}",
                progress=_advance(bar, task),
            )
    guardrails = {name: report for name, report in reports.items() if name != primary}
    decision = decide_reports(reports[primary], guardrails, settings.evaluation)
    console.print(_comparison_table(list(reports.values()), targets[0].model_id, targets[1].model_id))
    console.print(_decision_table(decision))
    console.print(f"results: {store.uri(f'evals/{run_id}-{primary}/')}", highlight=False)


def register(root: typer.Typer) -> None:
    root.command("eval")(evaluate_command)
