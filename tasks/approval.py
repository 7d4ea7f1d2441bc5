"""Optional human approval of a promotion: the nightly flow pauses until someone answers in the UI.

With ``RETRAIN_EVALUATION__REQUIRE_APPROVAL=true`` a decision to promote is not recorded or
applied until a person resumes the paused flow run in the Prefect UI with the
``ApprovalInput`` form (approve or reject, their name and a note). No answer within
``RETRAIN_EVALUATION__APPROVAL_TIMEOUT_SECONDS`` rejects. Either way the decision record
(``state/decisions/{version}.json``) says who or what decided in its ``approval`` field, so a
rejected candidate is never promoted by a later re-run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Running
from pydantic import Field

from retrain.config.settings import get_settings
from retrain.promote.decision import Decision, save_decision
from tasks.context import task_context
from tasks.retry import IO_TASK

__all__ = ["ApprovalInput", "record_decision", "review_promotion"]

UI = "Prefect UI (flow run input)"


class ApprovalInput(RunInput):
    """The form shown on the paused nightly run."""

    approve: bool = Field(default=False, description="Move `production` to the candidate.")
    approver: str = Field(default="", max_length=200, description="Your name; recorded in the decision.")
    note: str = Field(default="", max_length=2000, description="Why; recorded in the decision.")


@task(name="record-promotion-decision", **IO_TASK)
def record_decision(decision: Decision) -> Decision:
    """Save the decision create-only (the first decision of a dataset version wins)."""
    return save_decision(task_context().store, decision)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _resume_after_timeout() -> None:
    """A pause that timed out leaves the run Paused on the server; set it running to finish the flow."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(context.flow_run.id)
        if run.state is not None and run.state.type == StateType.PAUSED:
            client.set_flow_run_state(context.flow_run.id, Running(), force=True)


def _ask(decision: Decision, timeout: int) -> dict[str, Any]:
    logger = get_run_logger()
    form = ApprovalInput.with_initial_data(
        description=(
            f"# Approve promotion of `{decision.candidate_record.model_id}`?\n\n"
            f"No answer within {timeout} s rejects.\n\n{decision.report_markdown}"
        ),
        approve=False,
    )
    logger.info(
        "waiting up to %d s for approval of %s in the Prefect UI", timeout, decision.candidate_record.model_id
    )
    try:
        answer = pause_flow_run(
            wait_for_input=form,
            timeout=timeout,
            poll_interval=max(1, min(10, timeout // 10)),
            key=f"approve-{decision.dataset_version}",
        )
    except FlowPauseTimeout:
        _resume_after_timeout()
        logger.warning("no approval within %d s: rejecting", timeout)
        return {
            "verdict": "rejected",
            "by": "timeout",
            "via": "approval timeout",
            "note": f"no answer in {timeout} s",
        }
    verdict = "approved" if answer.approve else "rejected"
    return {"verdict": verdict, "by": answer.approver.strip() or "unnamed", "via": UI, "note": answer.note}


def review_promotion(decision: Decision) -> Decision:
    """Record the decision; with approval required, a promotion first waits for a person's verdict.

    Call from the flow (not a task): it pauses the flow run. Without
    ``require_approval`` it only records the decision, as the gate made it.
    """
    settings = get_settings().evaluation
    if not settings.require_approval:
        return record_decision(decision)
    if not decision.promote:
        approval = {
            "verdict": "not asked",
            "by": "gate",
            "via": "gate",
            "note": "the gate held the candidate",
        }
        return record_decision(replace(decision, approval=approval | {"at": _now()}))
    approval = _ask(decision, settings.approval_timeout_seconds) | {"at": _now()}
    who = f"{approval['verdict']} by {approval['by']}"
    if approval["verdict"] == "approved":
        reviewed = replace(decision, reason=f"{decision.reason}; {who}", approval=approval)
    else:
        reviewed = replace(
            decision,
            promote=False,
            reason=f"hold: {who} ({approval['note'] or 'no note'}); the gate said {decision.reason}",
            approval=approval,
        )
    section = (
        f"\n## Approval: {approval['verdict']}\n\n| by | via | at | note |\n|---|---|---|---|\n"
        f"| {approval['by']} | {approval['via']} | {approval['at']} | {approval['note'] or '-'} |\n"
    )
    get_run_logger().info("promotion of %s %s", decision.candidate_record.model_id, who)
    return record_decision(replace(reviewed, report_markdown=decision.report_markdown + section))
