"""Optional human approval of a promotion: the nightly flow pauses until someone answers in the UI.

With ``RETRAIN_EVALUATION__REQUIRE_APPROVAL=true`` a decision to promote is not recorded or
applied until a person resumes the paused flow run in the Prefect UI with the
``ApprovalInput`` form (approve or reject, their name and a note). What the answer, or its
absence, makes of the decision is ``retrain.promote.approval``; this module pauses the run and
records the result (``state/decisions/{version}.json``).
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Running
from pydantic import Field

from retrain.config.settings import get_settings
from retrain.promote.approval import answered, approval_question, not_asked, reviewed, timed_out
from retrain.promote.decision import Approval, Decision, save_decision
from tasks.context import task_context
from tasks.retry import IO_TASK

__all__ = [
    "APPROVAL_PENDING_EVENT",
    "ApprovalInput",
    "announce_approval_pending",
    "record_promotion_decision",
    "review_promotion",
]

APPROVAL_PENDING_EVENT = "retrain.approval.pending"


class ApprovalInput(RunInput):
    """The form shown on the paused nightly run."""

    approve: bool = Field(default=False, description="Move `production` to the candidate.")
    approver: str = Field(default="", max_length=200, description="Your name; recorded in the decision.")
    note: str = Field(default="", max_length=2000, description="Why; recorded in the decision.")


@task(name="record-promotion-decision", **IO_TASK)
def record_promotion_decision(decision: Decision) -> Decision:
    """Save the decision create-only (the first decision of a dataset version wins)."""
    return save_decision(task_context().store, decision)


def _resume_after_timeout() -> None:
    """A pause that timed out leaves the run Paused on the server; set it running to finish the flow."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(context.flow_run.id)
        if run.state is not None and run.state.type == StateType.PAUSED:
            client.set_flow_run_state(context.flow_run.id, Running(), force=True)


def announce_approval_pending(decision: Decision, timeout: int) -> None:
    """Emit `retrain.approval.pending` (resource `retrain.approval.<dataset version>`) from the
    flow run that starts waiting for a person, for the shipped automations."""
    emit_event(
        APPROVAL_PENDING_EVENT,
        resource={
            "prefect.resource.id": f"retrain.approval.{decision.dataset_version}",
            "prefect.resource.name": decision.dataset_version,
        },
        payload={
            "dataset_version": decision.dataset_version,
            "candidate": decision.candidate.model_id,
            "production": decision.production.model_id,
            "candidate_score": decision.candidate_score,
            "production_score": decision.production_score,
            "timeout_seconds": timeout,
        },
    )


# How often the paused run looks for an answer: the night goes on within a second of someone
# answering in the UI (one small API read a second while it waits).
_ANSWER_POLL_SECONDS = 1


def _ask(decision: Decision, timeout: int) -> Approval:
    logger = get_run_logger()
    form = ApprovalInput.with_initial_data(description=approval_question(decision, timeout), approve=False)
    model_id = decision.candidate.model_id
    logger.info("waiting up to %d s for approval of %s in the Prefect UI", timeout, model_id)
    announce_approval_pending(decision, timeout)
    try:
        answer = pause_flow_run(
            wait_for_input=form,
            timeout=timeout,
            poll_interval=_ANSWER_POLL_SECONDS,
            key=f"approve-{decision.dataset_version}",
        )
    except FlowPauseTimeout:
        _resume_after_timeout()
        logger.warning("no approval within %d s: rejecting", timeout)
        return timed_out(timeout)
    return answered(answer.approve, answer.approver, answer.note)


def review_promotion(decision: Decision) -> Decision:
    """Record the decision; with approval required, a promotion first waits for a person's verdict.

    Call from the flow (not a task): it pauses the flow run. Without
    ``require_approval`` it only records the decision, as the gate made it.
    """
    settings = get_settings().evaluation
    if not settings.require_approval:
        return record_promotion_decision(decision)
    if not decision.promote:
        return record_promotion_decision(reviewed(decision, not_asked()))
    approval = _ask(decision, settings.approval_timeout_seconds)
    get_run_logger().info("promotion of %s %s", decision.candidate.model_id, approval.who)
    return record_promotion_decision(reviewed(decision, approval))
