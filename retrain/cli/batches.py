"""`retrain batches ...`: what each night ingested, and the lines it quarantined with their reasons.

A batch is the new objects of one night, validated together; its manifest
(``state/ingest/batches/{id}.json``) has the counts, the reasons and the gates, and its
quarantined lines are in ``quarantine/{run}/{batch}.jsonl``. Their raw text is shown only with
``--raw``, and never for a line quarantined because it holds a secret.
"""

from __future__ import annotations

from itertools import islice
from typing import Annotated, Any

import typer

from retrain.cli.output import AsJson, Rows, plain_console, print_json
from retrain.config.redact import redact
from retrain.config.settings import get_settings
from retrain.ingest.batches import IngestReport, list_batches, load_batch, quarantined_rows
from retrain.storage.object_store import ObjectStore

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True, help="Ingested batches: their counts, gates and quarantined lines with reasons."
)

_SECRET_CODE = "contains_secret"
_console = plain_console()


def _store() -> ObjectStore:
    return ObjectStore.from_settings(get_settings().s3)


def _reasons(report: IngestReport) -> str:
    ranked = sorted(report.by_reason.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{code} {count}" for code, count in ranked) or "-"


@app.command("list")
def list_command(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest first.")] = 20,
    as_json: AsJson = False,
) -> None:
    """The newest batches: lines read, accepted and quarantined (by reason), and the gates."""
    reports = list_batches(_store(), newest=limit)[::-1]
    if as_json:
        print_json([report.to_json() for report in reports])
        return
    if not reports:
        _console.print("no batches yet: a night ingests the new objects under incoming/")
        return
    columns = ("Batch", "Run", "Objects", "Lines", "Accepted", "Quarantined (by reason)", "Gates")
    table = Rows("Ingested batches", columns)
    for report in reports:
        table.add_row(
            report.batch_id,
            report.run_id,
            str(len(report.objects)),
            f"{report.lines_read:,}",
            f"{report.accepted:,}",
            f"{report.quarantined:,}" + (f" ({_reasons(report)})" if report.quarantined else ""),
            "passed" if report.passed else "failed: " + "; ".join(report.failed_gates),
        )
    table.print(_console)


def _shown(row: dict[str, Any], raw: bool) -> dict[str, Any]:
    codes = [reason["code"] for reason in row["reasons"]]
    shown = {key: value for key, value in row.items() if key != "raw"}
    if raw:
        withheld = _SECRET_CODE in codes
        shown["raw"] = "(withheld: the line holds a secret)" if withheld else redact(str(row.get("raw", "")))
    return shown


@app.command()
def show(
    batch_id: Annotated[
        str, typer.Argument(help="The batch id, e.g. b-14a14d21d39deed5.", show_default=False)
    ],
    reason: Annotated[str | None, typer.Option("--reason", help="Only lines with this reason code.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many quarantined lines.")] = 20,
    raw: Annotated[bool, typer.Option("--raw", help="Also show each line's raw text (redacted).")] = False,
    as_json: AsJson = False,
) -> None:
    """One batch: its objects and counts, and its quarantined lines with their reasons."""
    store = _store()
    report = load_batch(store, batch_id)
    rows = (
        _shown(row, raw)
        for row in quarantined_rows(store, report)
        if reason is None or reason in {r["code"] for r in row["reasons"]}
    )
    lines = list(islice(rows, limit))
    if as_json:
        print_json({**report.to_json(), "quarantined_lines": lines})
        return
    _console.print(
        f"batch {report.batch_id} (run {report.run_id}): {report.lines_read:,} lines read = "
        f"{report.accepted:,} accepted + {report.quarantined:,} quarantined ({_reasons(report)}); "
        f"gates {'passed' if report.passed else 'failed: ' + '; '.join(report.failed_gates)}",
        soft_wrap=True,
    )
    for manifest in report.objects:
        _console.print(f"  {store.uri(manifest.key)} ({manifest.size:,} bytes)", soft_wrap=True)
    if not lines:
        what = f" with reason {reason}" if reason else ""
        _console.print(f"no quarantined lines{what}")
        return
    columns = ("Source", "Line", "Reasons", *(("Raw",) if raw else ()))
    table = Rows(f"Quarantined lines ({store.uri(report.quarantine_key or '')})", columns)
    for row in lines:
        messages = "\n".join(f"{r['code']}: {r['message']}" for r in row["reasons"])
        table.add_row(row["source"], str(row["line_no"]), messages, *([row["raw"]] if raw else []))
    table.print(_console)
