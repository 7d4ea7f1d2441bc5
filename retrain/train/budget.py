"""Training spend: a pre-flight estimate per job and a monthly ledger in ``state/budget/``.

Before anything is uploaded, the training file of the dataset version is priced with the
same token counts and price table as the validator (``retrain.validate.tokens.estimate_cost``) and
compared with ``max_training_cost_usd`` and what is left of ``monthly_budget_usd``.

The ledger ``state/budget/{YYYY-MM}.json`` has one entry per job (keyed by job id, so
recording twice changes nothing): the estimate while the job runs, then the billed cost
from the job's ``trained_tokens`` once it ended. The month's spend is the sum of both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from openai.types.fine_tuning import FineTuningJob

from retrain.config.stage_settings import TrainingSettings, ValidationSettings
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
    "check_budget",
    "estimate_training_cost",
    "month_jobs",
    "spend_of",
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
    return store.get_json_or_none(ledger_key(month)) or {"month": month, "jobs": {}}


def _entry_usd(entry: Mapping[str, Any]) -> float:
    value = entry.get("usd") if entry.get("status") in _ENDED else entry.get("estimated_usd")
    return float(value or 0.0)


def month_jobs(store: ObjectStore, month: str) -> dict[str, dict[str, Any]]:
    """The month's ledger entries by job id, each with ``counted_usd`` (what it adds to the spend)
    and ``billed`` (whether that is the billed cost of an ended job, or a running job's estimate)."""
    return {
        job_id: {**entry, "counted_usd": _entry_usd(entry), "billed": entry.get("status") in _ENDED}
        for job_id, entry in _ledger(store, month)["jobs"].items()
    }


def spend_of(jobs: Mapping[str, Mapping[str, Any]]) -> float:
    """What ledger entries (by job id) add up to: the billed cost of ended jobs plus the estimate
    of running ones."""
    return sum(_entry_usd(entry) for entry in jobs.values())


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
    month = _month(today)
    ledger = _ledger(store, month)
    spent = spend_of(ledger["jobs"])
    running = [
        job_id
        for job_id, entry in ledger["jobs"].items()
        if entry.get("dataset_version") == dataset_version
        and entry.get("config_hash") == config_hash
        and entry.get("status") not in _ENDED
    ]
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


def reserve_job_cost(
    store: ObjectStore,
    job: FineTuningJob,
    estimate_usd: float | None,
    *,
    dataset_version: str,
    config_hash: str,
) -> None:
    """Count a just-created (or resumed) job's estimate in its month until it ends."""
    month = _month(datetime.fromtimestamp(job.created_at, UTC))
    ledger = _ledger(store, month)
    entry = ledger["jobs"].get(job.id)
    if entry is not None and entry.get("status") in _ENDED:
        return
    ledger["jobs"][job.id] = {
        **(entry or {}),
        "dataset_version": dataset_version,
        "config_hash": config_hash,
        "status": job.status,
        "estimated_usd": estimate_usd,
    }
    store.put_json(ledger_key(month), ledger)


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
    month = _month(datetime.fromtimestamp(job.created_at, UTC))
    ledger = _ledger(store, month)
    entry = ledger["jobs"].get(job.id, {})
    metadata = job.metadata or {}
    ledger["jobs"][job.id] = {
        **entry,
        "dataset_version": entry.get("dataset_version", metadata.get("dataset_version")),
        "config_hash": entry.get("config_hash", metadata.get("config_hash")),
        "status": job.status,
        "trained_tokens": tokens,
        "usd": usd,
        "finished_at": job.finished_at,
    }
    store.put_json(ledger_key(month), ledger)
    logger.info("job %s %s: %d trained tokens, $%s", job.id, job.status, tokens, usd)
    return usd
