"""The validation-summary artifact's markdown: counts, reasons, objects and one row per gate."""

from __future__ import annotations

from retrain.ingest.batches import IngestReport, ObjectManifest
from retrain.ingest.summary import validation_markdown
from retrain.validate.expectations import GateCheck


def _report(gates: list[dict[str, object]]) -> IngestReport:
    return IngestReport(
        batch_id="b-1",
        run_id="r-1",
        objects=[ObjectManifest("incoming/2026-11-01/a.jsonl", "e", 10, 12, 10, 2, "r-1")],
        lines_read=12,
        accepted=10,
        quarantined=2,
        by_reason={"not_json": 2},
        gates=gates,
        passed=False,
        version_id=None,
        quarantine_key="quarantine/r-1/b-1.jsonl",
    )


def test_each_gate_is_a_row_with_its_result_and_detail() -> None:
    gates = [
        GateCheck("min_new_examples", True, 10, 10, "10 accepted, at least 10 needed").to_json(),
        GateCheck("duplicate_rate", False, 0.6, 0.5, "observed 0.6, at most 0.5").to_json(),
    ]
    markdown = validation_markdown(_report(gates))
    assert "**12** lines read = **10** accepted + **2** quarantined" in markdown
    assert "| `not_json` | 2 |" in markdown
    assert (
        "Quarantine: `quarantine/r-1/b-1.jsonl` (its lines and reasons: `retrain batches show b-1`)"
        in markdown
    )
    assert "| min_new_examples | pass | 10 accepted, at least 10 needed |" in markdown
    assert "| duplicate_rate | **FAIL** | observed 0.6, at most 0.5 |" in markdown


def test_a_report_stored_before_gates_had_a_detail_shows_its_message() -> None:
    stored = {"name": "max_quarantine_rate", "passed": False, "observed": 0.5, "threshold": 0.2}
    stored["message"] = "max_quarantine_rate: 6 of 12 quarantined"
    markdown = validation_markdown(_report([stored]))
    assert "| max_quarantine_rate | **FAIL** | max_quarantine_rate: 6 of 12 quarantined |" in markdown


def test_the_curated_version_points_to_retrain_data_show() -> None:
    report = _report([])
    report.version_id = "ds-0123456789ab"
    assert "Curated dataset version: `ds-0123456789ab` (`retrain data show ds-0123456789ab`)" in (
        validation_markdown(report)
    )


def test_a_skipped_gate_says_skipped_not_pass() -> None:
    skipped = GateCheck("min_new_examples", True, 4, 10, "counted at plan time", skipped=True).to_json()
    assert "| min_new_examples | skipped | counted at plan time |" in validation_markdown(_report([skipped]))
