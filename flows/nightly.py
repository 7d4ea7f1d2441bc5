"""The nightly retraining flow: ingest, validate, fine-tune, evaluate, promote."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from openai.types.fine_tuning import FineTuningJob
from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from retrain.config.settings import get_settings
from retrain.ingest.lease import HeldLease
from retrain.promote.decision import Decision
from retrain.promote.outcome import Outcome
from retrain.providers.clients import wind_down_notice
from retrain.report.night_summary import Tonight
from tasks.approval import review_promotion
from tasks.dataset import load_eval_prompts, prepare_training_files
from tasks.evaluate import evaluate_candidate
from tasks.finetune import (
    cancel_fine_tuning_of_run,
    check_training_budget,
    start_fine_tuning_job,
    upload_training_files,
    wait_for_fine_tuning_job,
)
from tasks.ingest import discover_new_objects, validate_and_curate
from tasks.lease import confirm_nightly_lease, nightly_lease_held, take_nightly_lease
from tasks.plan import plan_training, read_training_history
from tasks.promote import apply_promotion_decision, decide_promotion, read_production
from tasks.registry import register_candidate
from tasks.summary import publish_night_summary, summarise_night

__all__ = ["nightly_retrain"]


def _run_name() -> str:
    night = flow_run.parameters.get("night") or datetime.now(UTC).date()
    return f"retrain-{night}"


@flow(
    name="nightly-retrain",
    flow_run_name=_run_name,
    log_prints=False,
    on_cancellation=[cancel_fine_tuning_of_run],
)
def nightly_retrain(night: date | None = None) -> State[Any]:
    """One night: new examples in, and `production` moves only if a better model came out.

    The night holds the nightly lease throughout, so no other nightly run overlaps it. It ends in
    a state named for its outcome (Promoted, Rejected, NoNewData, TooFewExamples, StillTraining),
    or Failed, and leaves a ``night-summary`` artifact that says what happened.
    """
    night = night or datetime.now(UTC).date()
    tonight = Tonight(f"retrain-{night.isoformat()}")
    with nightly_lease_held(take_nightly_lease(tonight.run_id)) as lease:
        outcome, message = _night(night, lease, tonight)
    name = outcome or "Failed"
    summary = summarise_night(tonight, name, message, return_state=True)
    if summary.is_completed():
        publish_night_summary(summary.result(), name, message)
    else:
        get_run_logger().warning("no night summary tonight: %s", summary.message)
    return Failed(message=message) if outcome is None else Completed(name=outcome.value, message=message)


def _night(night: date, lease: HeldLease, tonight: Tonight) -> tuple[Outcome | None, str]:
    """How the night ended (None: failed) and why, in one line."""
    prompts = load_eval_prompts()
    if (rejected := _ingest(tonight, prompts)) is not None:
        return None, rejected

    plan = tonight.plan = plan_training(read_training_history())
    if plan.decided is not None:  # decided but not applied: the last run stopped in between
        apply_promotion_decision(plan.decided)
    if not plan.train or plan.version is None:
        return plan.outcome or Outcome.NO_NEW_DATA, plan.reason
    version_id = plan.version.version_id

    job = _train(night, lease, tonight, version_id, prompts)
    if job.status != "succeeded" or not job.fine_tuned_model:
        return (
            Outcome.STILL_TRAINING,
            f"job {job.id} is still {job.status} at the wait limit; the next run resumes it",
        )
    decision = _evaluate_and_promote(job, version_id, tonight)
    return Outcome.of_decision(
        decision.promote
    ), f"candidate {Outcome.of_decision(decision.promote).word}: {decision.reason}"


def _ingest(tonight: Tonight, prompts: frozenset[str]) -> str | None:
    """Validate and curate the new objects, if any; why their batch was rejected, if it was."""
    objects = discover_new_objects()
    if not objects:
        return None
    batch = tonight.batch = validate_and_curate(objects, tonight.run_id, prompts)
    if batch.passed:
        return None
    return f"batch {batch.batch_id} rejected, nothing uploaded: {'; '.join(batch.failed_gates)}"


def _train(
    night: date, lease: HeldLease, tonight: Tonight, version_id: str, prompts: frozenset[str]
) -> FineTuningJob:
    """Fine-tune on the dataset version; the job as it is at the end of the wait."""
    read_production()  # before anything is paid for: its provider must be configured to compare
    if notice := wind_down_notice(get_settings().provider, datetime.now(UTC).date()):
        get_run_logger().warning(notice)
    files = prepare_training_files(version_id, prompts)
    budget = check_training_budget(version_id, files)
    tonight.estimated_usd = budget.estimated_usd
    file_ids = upload_training_files(files)
    confirm_nightly_lease(lease, before="starting a fine-tuning job")
    training = start_fine_tuning_job(version_id, file_ids, tonight.run_id, night, budget.estimated_usd)
    tonight.training = wait_for_fine_tuning_job(training)
    return tonight.training.job


def _evaluate_and_promote(job: FineTuningJob, version_id: str, tonight: Tonight) -> Decision:
    """Evaluate the job's model against production, decide (with approval if required) and apply."""
    run_id = tonight.run_id
    candidate = register_candidate(job, version_id, run_id)
    production = tonight.production = read_production()
    reports = tonight.reports = evaluate_candidate(candidate, production, run_id)
    decision = tonight.decision = review_promotion(
        decide_promotion(reports, candidate, production, dataset_version=version_id, run_id=run_id)
    )
    apply_promotion_decision(decision)
    get_run_logger().info("candidate %s %s", candidate.model_id, Outcome.of_decision(decision.promote).word)
    return decision
