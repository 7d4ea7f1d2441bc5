"""The nightly retraining flow: ingest, validate, fine-tune, evaluate, promote."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, date, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from retrain.config.migration import Migration
from retrain.config.settings import get_settings, overridden_settings
from retrain.ingest.lease import HeldLease
from retrain.promote.decision import Decision
from retrain.promote.outcome import Outcome
from retrain.providers.clients import wind_down_notice
from retrain.report.night_summary import Tonight
from retrain.train.result import TrainingResult
from tasks.approval import review_promotion
from tasks.dataset import load_eval_prompts, prepare_training_files
from tasks.evaluate import evaluate_candidate
from tasks.ingest import discover_new_objects, validate_and_curate
from tasks.lease import confirm_nightly_lease, nightly_lease_held, take_nightly_lease
from tasks.plan import plan_training, read_training_history
from tasks.promote import apply_promotion_decision, decide_promotion, read_production
from tasks.registry import register_candidate
from tasks.retirement import warn_of_retirement
from tasks.serving import retire_model, serve_models, settle_model_deployments
from tasks.summary import publish_night_summary, summarise_night
from tasks.training import cancel_training_of_run, trainer_for

__all__ = ["nightly_retrain"]


def _run_name() -> str:
    night = flow_run.parameters.get("night") or datetime.now(UTC).date()
    migration = flow_run.parameters.get("migration")
    if migration:
        return f"migrate-{Migration.model_validate(migration).to}-{night}"
    return f"retrain-{night}"


@flow(
    name="nightly-retrain",
    flow_run_name=_run_name,
    log_prints=False,
    on_cancellation=[cancel_training_of_run],
)
def nightly_retrain(night: date | None = None, migration: Migration | None = None) -> State[Any]:
    """One night: new examples in, and `production` moves only if a better model came out.

    The night holds the nightly lease throughout, so no other nightly run overlaps it. It ends in
    a state named for its outcome (Promoted, Rejected, NoNewData, TooFewExamples, StillTraining,
    Superseded), or Failed, and leaves a ``night-summary`` artifact that says what happened.

    With ``migration`` (``retrain migrate``) the night trains the newest dataset version on
    another backend and `production` moves if the candidate is not worse than it by more than the
    margin (the non-inferiority gate mode), whatever was decided on the old backend.
    """
    night = night or datetime.now(UTC).date()
    prefix = f"migrate-{migration.to}" if migration else "retrain"
    tonight = Tonight(f"{prefix}-{night.isoformat()}")
    overrides = overridden_settings(migration.overrides()) if migration else nullcontext()
    with overrides, nightly_lease_held(take_nightly_lease(tonight.run_id)) as lease:
        outcome, message = _night(night, lease, tonight, migration)
    name = outcome or "Failed"
    summary = summarise_night(tonight, name, message, return_state=True)
    if summary.is_completed():
        publish_night_summary(summary.result(), name, message)
    else:
        get_run_logger().warning("no night summary tonight: %s", summary.message)
    return Failed(message=message) if outcome is None else Completed(name=outcome.value, message=message)


def _night(
    night: date, lease: HeldLease, tonight: Tonight, migration: Migration | None
) -> tuple[Outcome | None, str]:
    """How the night ended (None: failed) and why, in one line."""
    warn_of_retirement()
    prompts = load_eval_prompts()
    if (rejected := _ingest(tonight, prompts)) is not None:
        return None, rejected

    plan = tonight.plan = plan_training(read_training_history(migration.to if migration else None))
    if plan.decided is not None:  # decided but not applied: the last run stopped in between
        tonight.decision = apply_promotion_decision(plan.decided)
        if tonight.decision.superseded:
            return Outcome.SUPERSEDED, tonight.decision.reason
    if not plan.train or plan.version is None:
        return plan.outcome or Outcome.NO_NEW_DATA, plan.reason
    version_id = plan.version.version_id

    training = _train(night, lease, tonight, version_id, prompts)
    if not training.succeeded:
        return (
            Outcome.STILL_TRAINING,
            f"job {training.job_id} is still {training.status} at the wait limit; the next run resumes it",
        )
    decision = _evaluate_and_promote(training, version_id, tonight, migration)
    outcome = decision.outcome
    if migration and decision.promote:
        get_run_logger().info(
            "production moved to the %s backend; set %s so the next nights train there",
            migration.to,
            migration.setting_to_keep,
        )
    return outcome, decision.reason if decision.superseded else f"candidate {outcome.word}: {decision.reason}"


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
) -> TrainingResult:
    """Train on the dataset version with the configured backend; the job as the wait left it."""
    settings = get_settings()
    trainer = trainer_for(settings)
    production = read_production()  # before anything is paid for: it must be reachable to compare
    if trainer.name == "openai_api" and (
        notice := wind_down_notice(settings.provider, datetime.now(UTC).date())
    ):
        get_run_logger().warning(notice)
    files = prepare_training_files(version_id, prompts)
    budget = trainer.estimate(version_id, files)
    tonight.estimated_usd = budget.estimated_usd if budget else None
    prepared = trainer.prepare(version_id, files, production)
    confirm_nightly_lease(lease, before="starting a training job")
    started = trainer.start(
        prepared,
        version_id=version_id,
        run_id=tonight.run_id,
        night=night,
        estimated_usd=tonight.estimated_usd,
    )
    tonight.training = trainer.wait(started)
    return tonight.training


def _evaluate_and_promote(
    training: TrainingResult, version_id: str, tonight: Tonight, migration: Migration | None
) -> Decision:
    """Evaluate the trained model against production, decide (with approval if required) and apply."""
    run_id = tonight.run_id
    # Loads the adapters a vLLM-compatible server needs, and deploys models that live on Azure.
    production, candidate = serve_models([read_production(), training.candidate(version_id)])
    tonight.production = production
    candidate = register_candidate(candidate, version_id, run_id)
    reports = tonight.reports = evaluate_candidate(candidate, production, run_id)
    decision = tonight.decision = review_promotion(
        decide_promotion(
            reports,
            candidate,
            production,
            dataset_version=version_id,
            run_id=run_id,
            migration=migration.to if migration else None,
        )
    )
    decision = tonight.decision = apply_promotion_decision(decision)
    if not decision.promote:
        retire_model(candidate)
    settle_model_deployments()
    outcome = decision.outcome
    get_run_logger().info("candidate %s %s", candidate.model_id, outcome.word)
    return decision
