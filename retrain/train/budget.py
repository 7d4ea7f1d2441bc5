"""Training spend: a pre-flight estimate per job and a monthly ledger in ``state/budget/``.

Before anything is uploaded, the training file of the dataset version is priced with the
same token counts and price table as the validator (``retrain.validate.tokens.estimate_cost``) and
compared with ``max_training_cost_usd`` and what is left of ``monthly_budget_usd``. A Together job
is priced by Together itself (``retrain.train.together_price``) and checked the same way.

The ledger ``state/budget/{YYYY-MM}.json`` has one entry per job (keyed by job id, so
recording twice changes nothing): the estimate while the job runs, then the billed cost
from the job's ``trained_tokens`` once it ended (a job with no price in the table, such as
Together's, goes on counting at its estimate). Beside the jobs, one entry per evaluation run
(keyed by its eval run id): the estimate before it asks anything, then what its answers' usage
cost (``retrain.evaluate.spend``). The month's spend, which ``monthly_budget_usd`` limits, is
the sum of all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from openai.types.fine_tuning import FineTuningJob

from retrain.config.stage_settings import EvaluationSettings, TrainingSettings, ValidationSettings
from retrain.evaluate.eval_sets import EvalSet
from retrain.evaluate.results import EvalReport
from retrain.evaluate.spend import EvalCost, check_evaluation_cost, counted_cost, estimate_evaluation_cost
from retrain.exceptions import BudgetExceeded, ConfigError, DataError
from retrain.storage.layout import ledger_key
from retrain.storage.object_store import ObjectStore
from retrain.validate.tokens import (
    CostEstimate,
    count_example,
    encoding_for_model,
    estimate_cost,
    lookup_by_family,
)

__all__ = [
    "BudgetCheck",
    "GpuRun",
    "MonthSpend",
    "budget_evaluations",
    "check_budget",
    "check_month_spend",
    "count_evaluation",
    "estimate_training_cost",
    "month_evaluations",
    "month_jobs",
    "month_spend",
    "spend_of",
    "record_evaluation_cost",
    "record_gpu_run",
    "record_job_cost",
    "reserve_job_cost",
]

logger = logging.getLogger(__name__)

_ENDED = {"succeeded", "failed", "cancelled"}


@dataclass(frozen=True)
class BudgetCheck:
    """What the pre-flight check saw: the estimate and the month's spend before this job."""

    estimate: CostEstimate | None
    month: str
    month_spend_usd: float
    resumed: bool = False

    @property
    def estimated_usd(self) -> float | None:
        return None if self.estimate is None else self.estimate.usd


def _month(when: date | datetime) -> str:
    return f"{when:%Y-%m}"


def _lines(content: bytes) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise DataError(f"training file line {number} is not JSON: rebuild the dataset version") from None
        if isinstance(example, dict):
            yield example


def estimate_training_cost(
    content: bytes, training: TrainingSettings, validation: ValidationSettings
) -> CostEstimate | None:
    """Billable tokens and price of training on this JSONL file (the validator's rule).

    None when the base model's tokenizer or example limit is unknown (a model of another
    provider): then only an unlimited budget lets the job through.
    """
    try:
        encoding = encoding_for_model(training.base_model)
        counts = (count_example(example, encoding) for example in _lines(content))
        return estimate_cost(counts, training.base_model, validation, n_epochs=training.n_epochs)
    except ConfigError as exc:
        logger.warning("no cost estimate for %s: %s", training.base_model, exc)
        return None


def _ledger(store: ObjectStore, month: str) -> dict[str, Any]:
    ledger: dict[str, Any] = store.get_json_or_none(ledger_key(month)) or {"month": month, "jobs": {}}
    ledger.setdefault("evaluations", {})
    return ledger


def _billed(entry: Mapping[str, Any]) -> bool:
    """Whether the entry's count is final: an ended job's billed cost, or no price to count at all."""
    ended = entry.get("status") in _ENDED
    return ended and (entry.get("usd") is not None or entry.get("estimated_usd") is None)


def _entry_usd(entry: Mapping[str, Any]) -> float:
    """An ended job counts its billed cost, or its estimate where it has no price (Together's)."""
    value = entry.get("usd") if entry.get("status") in _ENDED else None
    return float(value if value is not None else entry.get("estimated_usd") or 0.0)


@dataclass(frozen=True)
class MonthSpend:
    """A month's ledger, read once: its jobs and its evaluation runs, each entry with
    ``counted_usd`` (what it adds to the spend) and ``billed`` (whether that is a billed or
    counted cost, or an estimate: a running job's, an evaluation's before it finished)."""

    jobs: dict[str, dict[str, Any]]
    evaluations: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, ledger: Mapping[str, Any]) -> MonthSpend:
        jobs = {
            job_id: {**entry, "counted_usd": _entry_usd(entry), "billed": _billed(entry)}
            for job_id, entry in ledger["jobs"].items()
        }
        evaluations = {
            run_id: {
                **entry,
                "counted_usd": float((entry.get("counted") or entry.get("estimated") or {}).get("usd", 0.0)),
                "billed": entry.get("counted") is not None,
            }
            for run_id, entry in ledger["evaluations"].items()
        }
        return cls(jobs, evaluations)

    @property
    def training_usd(self) -> float:
        return spend_of(self.jobs)

    @property
    def evaluation_usd(self) -> float:
        return float(sum(entry["counted_usd"] for entry in self.evaluations.values()))


def month_spend(store: ObjectStore, month: str) -> MonthSpend:
    """The month's jobs and evaluation runs, from one read of its ledger."""
    return MonthSpend.of(_ledger(store, month))


def month_jobs(store: ObjectStore, month: str) -> dict[str, dict[str, Any]]:
    """The month's ledger entries by job id (``MonthSpend.jobs``)."""
    return month_spend(store, month).jobs


def month_evaluations(store: ObjectStore, month: str) -> dict[str, dict[str, Any]]:
    """The month's evaluation runs by eval run id (``MonthSpend.evaluations``)."""
    return month_spend(store, month).evaluations


def record_evaluation_cost(
    store: ObjectStore,
    run_id: str,
    eval_set: str,
    when: date,
    *,
    estimated: EvalCost | None = None,
    counted: EvalCost | None = None,
) -> None:
    """Record an evaluation run's estimate (before it asks) or the counted cost of one attempt of
    it (after). Attempts add up: a retry asks only what the answer cache lacks, so each attempt
    counts answers no other did."""
    month = _month(when)
    ledger = _ledger(store, month)
    entry = ledger["evaluations"].get(run_id, {"eval_set": eval_set})
    if estimated is not None:
        entry["estimated"] = estimated.to_json()
    if counted is not None:
        before = entry.get("counted")
        entry["counted"] = (counted if before is None else EvalCost(**before).plus(counted)).to_json()
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
    ledger["evaluations"][run_id] = entry
    store.put_json(ledger_key(month), ledger)


def spend_of(jobs: Mapping[str, Mapping[str, Any]]) -> float:
    """What ledger entries (by job id) add up to: the billed cost of ended jobs plus the estimate
    of running ones."""
    return sum(_entry_usd(entry) for entry in jobs.values())


def _month_so_far(
    store: ObjectStore, today: date, dataset_version: str, config_hash: str
) -> tuple[str, float, bool]:
    """Today's month, its spend so far, and whether a job for this dataset version and config is
    in its ledger and has not ended (resumed, so it costs nothing new and is never refused)."""
    month = _month(today)
    ledger = _ledger(store, month)
    jobs = ledger["jobs"]
    spent = MonthSpend.of(ledger)
    running = any(
        entry.get("dataset_version") == dataset_version
        and entry.get("config_hash") == config_hash
        and entry.get("status") not in _ENDED
        for entry in jobs.values()
    )
    return month, spent.training_usd + spent.evaluation_usd, running


def check_budget(
    store: ObjectStore,
    estimate: CostEstimate | None,
    training: TrainingSettings,
    *,
    dataset_version: str,
    config_hash: str,
    today: date,
) -> BudgetCheck:
    """Raise BudgetExceeded when the job would pass either limit; a job already running is let through.

    A job for the same dataset version and config that is still running is resumed by the
    fine-tuning step, costs nothing new, and is never refused.
    """
    month, spent, running = _month_so_far(store, today, dataset_version, config_hash)
    if running:
        return BudgetCheck(estimate, month, spent, resumed=True)
    limits = training.max_training_cost_usd is not None or training.monthly_budget_usd is not None
    if estimate is None or estimate.usd is None:
        if limits:
            raise BudgetExceeded(
                f"no training price for {training.base_model!r}, so the budget cannot be checked: add "
                "it to RETRAIN_VALIDATION__TRAINING_USD_PER_MILLION_TOKENS (and its family to "
                "RETRAIN_VALIDATION__EXAMPLE_TOKEN_LIMITS) or unset the budget limits"
            )
        return BudgetCheck(estimate, month, spent)
    usd = estimate.usd
    if training.max_training_cost_usd is not None and usd > training.max_training_cost_usd:
        raise BudgetExceeded(
            f"estimated training cost ${usd:,.2f} ({estimate.billable_tokens:,} tokens x "
            f"{estimate.epochs} epochs) of {dataset_version} is above max_training_cost_usd "
            f"${training.max_training_cost_usd:,.2f}: nothing uploaded; raise "
            "RETRAIN_TRAINING__MAX_TRAINING_COST_USD or train on less data"
        )
    if training.monthly_budget_usd is not None and spent + usd > training.monthly_budget_usd:
        raise BudgetExceeded(
            f"training {dataset_version} (estimated ${usd:,.2f}) would bring {month}'s spend from "
            f"${spent:,.2f} past monthly_budget_usd ${training.monthly_budget_usd:,.2f}: nothing "
            f"uploaded; raise RETRAIN_TRAINING__MONTHLY_BUDGET_USD or wait for next month"
        )
    return BudgetCheck(estimate, month, spent)


def check_month_spend(
    store: ObjectStore, training: TrainingSettings, *, dataset_version: str, config_hash: str, today: date
) -> BudgetCheck:
    """For runs priced only once they ended (lora: GPU hours): raise BudgetExceeded when the month's
    spend has reached ``monthly_budget_usd``; a run already under way is let through."""
    month, spent, running = _month_so_far(store, today, dataset_version, config_hash)
    if running:
        return BudgetCheck(None, month, spent, resumed=True)
    budget = training.monthly_budget_usd
    if budget is not None and spent >= budget:
        raise BudgetExceeded(
            f"{month}'s training spend ${spent:,.2f} has reached monthly_budget_usd ${budget:,.2f}: no "
            f"training run started for {dataset_version}; raise RETRAIN_TRAINING__MONTHLY_BUDGET_USD "
            "or wait for next month"
        )
    return BudgetCheck(None, month, spent)


def _write_entry(
    store: ObjectStore,
    month: str,
    job_id: str,
    fields: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    unless_ended: bool = False,
) -> None:
    """Merge ``fields`` into the job's ledger entry (``defaults`` only where it has no value yet)."""
    ledger = _ledger(store, month)
    entry = ledger["jobs"].get(job_id)
    if unless_ended and entry is not None and entry.get("status") in _ENDED:
        return
    ledger["jobs"][job_id] = {**(defaults or {}), **(entry or {}), **fields}
    store.put_json(ledger_key(month), ledger)


def reserve_job_cost(
    store: ObjectStore,
    job: FineTuningJob,
    estimate_usd: float | None,
    *,
    dataset_version: str,
    config_hash: str,
) -> None:
    """Count a just-created (or resumed) job's estimate in its month until it ends."""
    fields = {
        "dataset_version": dataset_version,
        "config_hash": config_hash,
        "status": job.status,
        "estimated_usd": estimate_usd,
    }
    _write_entry(
        store, _month(datetime.fromtimestamp(job.created_at, UTC)), job.id, fields, unless_ended=True
    )


def record_job_cost(store: ObjectStore, job: FineTuningJob, validation: ValidationSettings) -> float | None:
    """Record the trained tokens and billed cost of an ended job; return the cost (None: no price)."""
    if job.status not in _ENDED:
        return None
    try:
        price: float | None = lookup_by_family(validation.training_usd_per_million_tokens, job.model, "price")
    except ConfigError:
        price = None
    tokens = job.trained_tokens or 0
    usd = None if price is None else round(tokens * price / 1_000_000, 6)
    metadata = job.metadata or {}
    _write_entry(
        store,
        _month(datetime.fromtimestamp(job.created_at, UTC)),
        job.id,
        {"status": job.status, "trained_tokens": tokens, "usd": usd, "finished_at": job.finished_at},
        defaults={
            "dataset_version": metadata.get("dataset_version"),
            "config_hash": metadata.get("config_hash"),
        },
    )
    logger.info("job %s %s: %d trained tokens, $%s", job.id, job.status, tokens, usd)
    return usd


@dataclass(frozen=True)
class GpuRun:
    """A training run on the team's own GPUs (the lora backend), as the ledger counts it."""

    run_id: str
    created: datetime
    dataset_version: str
    config_hash: str
    status: str  # running, queued, or an ended status: succeeded, failed, cancelled
    gpu_seconds: float | None = None
    trained_tokens: int | None = None


def record_gpu_run(store: ObjectStore, run: GpuRun, gpu_hour_usd: float | None) -> float | None:
    """Record a GPU training run in its month: once it ended, its GPU time and its cost at
    ``gpu_hour_usd`` (None: not priced, counted as $0); return that cost."""
    ended = run.status in _ENDED
    seconds = run.gpu_seconds if ended else None
    usd = (
        round(seconds / 3600 * gpu_hour_usd, 6) if gpu_hour_usd is not None and seconds is not None else None
    )
    fields: dict[str, Any] = {
        "backend": "lora",
        "dataset_version": run.dataset_version,
        "config_hash": run.config_hash,
        "status": run.status,
        "gpu_seconds": None if seconds is None else round(seconds, 1),
        "trained_tokens": run.trained_tokens,
        "usd": usd,
    }
    _write_entry(store, _month(run.created), run.run_id, fields)
    return usd


def budget_evaluations(
    store: ObjectStore,
    runs: Mapping[str, EvalSet],
    model_ids: Sequence[str],
    settings: EvaluationSettings,
    today: date,
) -> EvalCost:
    """Estimate the evaluation runs (eval run id -> its set) of every model before anything is
    asked, refuse (BudgetExceeded) above ``max_eval_cost_usd``, record each estimate; the total."""
    estimates = {
        run_id: estimate_evaluation_cost(eval_set, model_ids, settings) for run_id, eval_set in runs.items()
    }
    total = check_evaluation_cost(estimates.values(), settings)
    for run_id, estimate in estimates.items():
        record_evaluation_cost(store, run_id, runs[run_id].name, today, estimated=estimate)
    return total


def count_evaluation(
    store: ObjectStore, report: EvalReport, settings: EvaluationSettings, today: date
) -> EvalCost:
    """Record what an evaluation's answers (and judge calls) cost, from their usage."""
    counted = counted_cost(report.usage, settings)
    record_evaluation_cost(store, report.run_id, report.eval_set, today, counted=counted)
    return counted
