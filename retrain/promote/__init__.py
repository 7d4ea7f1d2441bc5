"""The promotion decision: should tonight's candidate replace `production`, and then make it so.

The candidate (the model a finished job made, ``candidate``) and production are compared as eval
targets on the main eval set and each guardrail set (``comparison``). The gate (``gate``, with
its paired ``statistics``) turns the eval reports into promoted or rejected; the ``decision`` record
keeps that verdict for the dataset version, create-only in the bucket. With approval required, a
person's answer (``approval``) turns the gate's decision into the recorded one. Applying it
(``promotion``) moves `production` once per candidate and says what moved.
"""

from retrain.promote.approval import answered, approval_question, not_asked, reviewed, timed_out
from retrain.promote.comparison import GateSets, gate_runs, gate_targets
from retrain.promote.decision import (
    Approval,
    Decision,
    last_decided_version,
    load_decision,
    promotion_decision,
    record_superseded,
    save_decision,
)
from retrain.promote.gate import GateCheckResult, GateDecision, decide, decide_reports
from retrain.promote.outcome import Outcome
from retrain.promote.promotion import Promotion, apply_decision, production_or_base, promotion_key
from retrain.promote.statistics import (
    Significance,
    is_binary,
    mcnemar_exact_p,
    paired_binary_ci,
    paired_bootstrap,
    significance,
)

__all__ = [
    "Approval",
    "Decision",
    "GateCheckResult",
    "GateDecision",
    "GateSets",
    "Outcome",
    "Promotion",
    "Significance",
    "answered",
    "apply_decision",
    "approval_question",
    "decide",
    "decide_reports",
    "gate_runs",
    "gate_targets",
    "is_binary",
    "last_decided_version",
    "load_decision",
    "mcnemar_exact_p",
    "not_asked",
    "paired_binary_ci",
    "paired_bootstrap",
    "production_or_base",
    "promotion_decision",
    "promotion_key",
    "record_superseded",
    "reviewed",
    "save_decision",
    "significance",
    "timed_out",
]
