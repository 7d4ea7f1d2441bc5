"""The nightly retraining flow: ingest, validate, fine-tune, evaluate, promote."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from retrain.config.settings import get_settings
from retrain.evaluate.targets import ModelTarget
from retrain.ingest.lease import HeldLease
from retrain.providers.clients import provider_named, wind_down_notice
from retrain.registry.registry import ModelRecord
from tasks.approval import review_promotion
from tasks.dataset import eval_prompts, prepare_training_files
from tasks.evaluate import evaluate_sets
from tasks.finetune import (
    cancel_fine_tuning_of_run,
    check_training_budget,
    start_fine_tuning,
    upload_training_files,
    wait_for_fine_tuning,
)
from tasks.ingest import discover_new_objects, validate_and_curate
from tasks.lease import confirm_nightly_lease, nightly_lease_held, take_nightly_lease
from tasks.promote import apply_promotion, current_production, decide_promotion, plan_tonight
from tasks.registry import move_alias

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

    The night holds the nightly lease throughout, so no other nightly run overlaps it.
    """
    night = night or datetime.now(UTC).date()
    run_id = f"retrain-{night.isoformat()}"
    with nightly_lease_held(take_nightly_lease(run_id)) as lease:
        return _night(night, run_id, lease)


def _night(night: date, run_id: str, lease: HeldLease) -> State[Any]:
    settings = get_settings()
    logger = get_run_logger()
    eval_sets = [settings.evaluation.eval_set, *settings.evaluation.guardrails]
    prompts = eval_prompts(eval_sets)

    objects = discover_new_objects()
    if objects:
        batch = validate_and_curate(objects, run_id, prompts)
        if not batch.passed:
            reasons = "; ".join(batch.failed_gates)
            return Failed(message=f"batch {batch.batch_id} rejected, nothing uploaded: {reasons}")

    plan = plan_tonight()
    if plan.decided is not None:
        apply_promotion(plan.decided)
    if not plan.train or plan.version is None:
        return Completed(message=plan.reason)
    version_id = plan.version.version_id

    current_production()  # before anything is paid for: its provider must be configured to compare
    if notice := wind_down_notice(settings.provider, datetime.now(UTC).date()):
        logger.warning(notice)
    files = prepare_training_files(version_id, prompts)
    budget = check_training_budget(version_id, files)
    file_ids = upload_training_files(files)
    confirm_nightly_lease(lease, before="starting a fine-tuning job")
    training = start_fine_tuning(version_id, file_ids, run_id, night, budget.estimated_usd)
    job = wait_for_fine_tuning(training)
    if job.status != "succeeded" or not job.fine_tuned_model:
        return Completed(
            name="StillTraining",
            message=f"job {job.id} is still {job.status} at the wait limit; the next run resumes it",
        )

    candidate = ModelRecord(
        model_id=job.fine_tuned_model,
        provider=settings.provider.name,
        base_model=job.model,
        job_id=job.id,
        dataset_version=version_id,
    )
    move_alias("candidate", candidate, reason=f"trained on {version_id}", run_id=run_id)
    production = current_production()
    targets = [
        ModelTarget("candidate", candidate.model_id, provider_named(settings, candidate.provider)),
        ModelTarget("production", production.model_id, provider_named(settings, production.provider)),
    ]
    guardrails = evaluate_sets(
        targets,
        {settings.evaluation.eval_set: run_id}
        | {name: f"{run_id}-{name}" for name in settings.evaluation.guardrails},
    )
    main = guardrails.pop(settings.evaluation.eval_set)
    approval = settings.evaluation.require_approval
    decision = decide_promotion(
        main, guardrails, candidate, production, dataset_version=version_id, run_id=run_id, save=not approval
    )
    if approval:
        decision = review_promotion(decision)
    apply_promotion(decision)
    verdict = "promoted" if decision.promote else "rejected"
    logger.info("candidate %s %s", candidate.model_id, verdict)
    return Completed(message=f"candidate {verdict}: {decision.reason}")
