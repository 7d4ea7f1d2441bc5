"""The validation summary a person reads in the Prefect UI after a batch is ingested.

A pure function of the batch's report, so it is tested without a Prefect server; the ingest
task publishes it as the ``validation-summary`` artifact.
"""

from __future__ import annotations

from retrain.ingest.batches import IngestReport
from retrain.validate.moderation import moderation_line

__all__ = ["validation_markdown"]


def validation_markdown(report: IngestReport) -> str:
    """Accepted / quarantined by reason, per object, and each batch gate."""
    verdict = "passed" if report.passed else "**rejected**"
    lines = [
        f"# Validation of batch `{report.batch_id}`: {verdict}",
        "",
        f"**{report.lines_read}** lines read = **{report.accepted}** accepted + "
        f"**{report.quarantined}** quarantined",
        "",
    ]
    if report.version_id:
        lines += [
            f"Curated dataset version: `{report.version_id}` (`retrain data show {report.version_id}`)",
            "",
        ]
    if report.quarantine_key:
        lines += [
            f"Quarantine: `{report.quarantine_key}` (its lines and reasons: "
            f"`retrain batches show {report.batch_id}`)",
            "",
        ]
    if report.by_reason:
        lines += ["| reason | lines |", "| --- | ---: |"]
        lines += [
            f"| `{code}` | {count} |"
            for code, count in sorted(report.by_reason.items(), key=lambda kv: -kv[1])
        ]
        lines.append("")
    lines += ["| object | lines | accepted | quarantined |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| `{o.key}` | {o.lines_read} | {o.accepted} | {o.quarantined} |" for o in report.objects]
    if report.gates:
        lines += ["", "| gate | result | detail |", "| --- | --- | --- |"]
        for gate in report.gates:
            result = "skipped" if gate.get("skipped") else "pass" if gate["passed"] else "**FAIL**"
            # reports stored before gates had a detail carry only the message
            lines.append(f"| {gate['name']} | {result} | {gate.get('detail') or gate['message']} |")
    if report.moderation:
        lines += ["", f"Moderation pre-check: {moderation_line(report.moderation)}"]
    if report.cost_estimate_usd is not None:
        lines += ["", f"Estimated training cost of this batch: ${report.cost_estimate_usd:.2f}"]
    return "\n".join(lines)
