"""Human approval of a promotion, without Prefect: the question asked, the answer as an
``Approval``, and the decision it leaves.

With ``RETRAIN_EVALUATION__REQUIRE_APPROVAL=true`` a decision to promote is not recorded or applied
until a person answers (the nightly flow pauses for it, ``tasks/approval.py``). No answer within
``RETRAIN_EVALUATION__APPROVAL_TIMEOUT_SECONDS`` rejects. Either way the decision record says who
or what decided in its ``approval`` field, so a rejected candidate is never promoted by a later
re-run; a decision the gate held is recorded with the approval "not asked".
"""

from __future__ import annotations

from retrain.promote.decision import Approval, Decision

__all__ = ["answered", "approval_question", "not_asked", "reviewed", "timed_out"]

_UI = "Prefect UI (flow run input)"


def approval_question(decision: Decision, timeout: int) -> str:
    """What the person is asked (markdown): the candidate, the timeout and the gate's report."""
    return (
        f"# Approve promotion of `{decision.candidate.model_id}`?\n\n"
        f"No answer within {timeout} s rejects.\n\n{decision.report_markdown}"
    )


def answered(approve: bool, approver: str, note: str) -> Approval:
    """A person's answer in the UI; an approver who left their name empty is ``unnamed``."""
    verdict = "approved" if approve else "rejected"
    return Approval(verdict=verdict, by=approver.strip() or "unnamed", via=_UI, note=note)


def timed_out(timeout: int) -> Approval:
    """No answer within ``timeout`` seconds: rejected."""
    note = f"no answer in {timeout} s"
    return Approval(verdict="rejected", by="timeout", via="approval timeout", note=note)


def not_asked() -> Approval:
    """The gate rejected the candidate, so nobody was asked."""
    return Approval(verdict="not asked", by="gate", via="gate", note="the gate rejected the candidate")


def reviewed(decision: Decision, approval: Approval) -> Decision:
    """The decision to record after ``approval``.

    Approved keeps the gate's decision and says by whom; rejected rejects the candidate and keeps
    what the gate said in the reason. Both add an approval section to the report. "Not asked"
    only records the approval.
    """
    if approval.verdict == "not asked":
        return decision.model_copy(update={"approval": approval})
    if approval.verdict == "approved":
        promote, reason = decision.promote, f"{decision.reason}; {approval.who}"
    else:
        promote = False
        reason = f"{approval.who} ({approval.note or 'no note'}); the gate said {decision.reason}"
    section = (
        f"\n## Approval: {approval.verdict}\n\n| by | via | at | note |\n|---|---|---|---|\n"
        f"| {approval.by} | {approval.via} | {approval.at} | {approval.note or '-'} |\n"
    )
    return decision.model_copy(
        update={
            "promote": promote,
            "reason": reason,
            "approval": approval,
            "report_markdown": decision.report_markdown + section,
        }
    )
