"""`retrain spend`: what training and evaluation cost this month (or another), against the budget.

It reads the ledger the nightly flow keeps in ``state/budget/{YYYY-MM}.json``: for a provider's
job the estimate while it runs and its billed cost (trained tokens x the price table) once it
ended (still its estimate where the table has no price: Together's); for a lora run its GPU
time, priced at ``RETRAIN_LORA__GPU_HOUR_USD`` once it ended; for an evaluation run its
estimate, then what its answers' usage cost.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from retrain.cli.output import AsJson, Rows, plain_console, print_json
from retrain.config.settings import get_settings
from retrain.evaluate.spend import dollars
from retrain.storage.object_store import ObjectStore
from retrain.train.budget import month_spend

__all__ = ["register"]

_console = plain_console()


def _cost(entry: dict[str, Any]) -> str:
    if entry["billed"]:
        return "-" if entry.get("usd") is None else f"${entry['counted_usd']:,.2f}"
    return "-" if entry.get("estimated_usd") is None else f"~${entry['counted_usd']:,.2f} (estimate)"


def spend(
    month: Annotated[
        str | None, typer.Option("--month", help="YYYY-MM (default: this month, UTC).", show_default=False)
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Training and evaluation spend of a month, job by job and run by run, against the monthly budget."""
    month = month or f"{datetime.now(UTC):%Y-%m}"
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise typer.BadParameter(f"{month!r} is not a month: use YYYY-MM", param_hint="--month")
    settings = get_settings()
    store = ObjectStore.from_settings(settings.s3)
    spent = month_spend(store, month)  # one read of the ledger
    jobs, evaluations = spent.jobs, spent.evaluations
    training = spent.training_usd
    evaluating = round(spent.evaluation_usd, 6)
    total = training + evaluating
    budget = settings.training.monthly_budget_usd
    if as_json:
        summary = {
            "month": month,
            "spend_usd": total,
            "training_usd": training,
            "evaluation_usd": evaluating,
            "monthly_budget_usd": budget,
            "jobs": jobs,
            "evaluations": evaluations,
        }
        print_json(summary)
        return
    if not jobs and not evaluations:
        _console.print(f"no fine-tuning jobs or evaluations recorded for {month}")
        return
    if jobs:
        _jobs_table(jobs, month).print(_console)
    if evaluations:
        _evaluations_table(evaluations, month).print(_console)
    limit = (
        f"of the ${budget:,.2f} monthly budget"
        if budget is not None
        else "with no monthly budget set (RETRAIN_TRAINING__MONTHLY_BUDGET_USD)"
    )
    parts = f" (${training:,.2f} training, ${evaluating:,.2f} evaluation)" if evaluations else ""
    _console.print(f"{month}: ${total:,.2f}{parts} {limit}")


def _jobs_table(jobs: dict[str, dict[str, Any]], month: str) -> Rows:
    columns = ("Job", "Backend", "Dataset version", "Status", "Trained tokens", "GPU time", "Cost")
    table = Rows(f"Fine-tuning spend, {month}", columns)
    for job_id, entry in sorted(jobs.items()):
        tokens = entry.get("trained_tokens")
        seconds = entry.get("gpu_seconds")
        table.add_row(
            job_id,
            str(entry.get("backend", "openai_api")),
            str(entry.get("dataset_version") or "-"),
            str(entry.get("status") or "-"),
            "-" if tokens is None else f"{tokens:,}",
            "-" if seconds is None else f"{seconds / 3600:.2f} h",
            _cost(entry),
        )
    return table


def _evaluations_table(evaluations: dict[str, dict[str, Any]], month: str) -> Rows:
    columns = ("Eval run", "Set", "Tokens in", "Tokens out", "Estimated", "Cost")
    table = Rows(f"Evaluation spend, {month}", columns)
    for run_id, entry in sorted(evaluations.items()):
        estimated, counted = entry.get("estimated"), entry.get("counted")
        sent = counted or estimated or {}
        table.add_row(
            run_id,
            str(entry.get("eval_set") or "-"),
            f"{sent.get('input_tokens', 0):,}",
            f"{sent.get('output_tokens', 0):,}",
            "-" if estimated is None else f"~{dollars(estimated['usd'])}",
            "-" if counted is None else dollars(counted["usd"]),
        )
    return table


def register(root: typer.Typer) -> None:
    root.command("spend")(spend)
