"""`retrain batches list | show` on batches ingested for real: counts, reasons, quarantined lines."""

from __future__ import annotations

import json

import orjson
import pytest
from typer.testing import CliRunner, Result

from retrain.cli.main import app
from retrain.config.services import S3Settings
from retrain.config.settings import get_settings, load_settings
from retrain.ingest.batches import ingest_objects
from retrain.ingest.discovery import find_new_objects
from retrain.local.synthetic import make_dirty_lines, make_examples
from retrain.storage.object_store import ObjectStore

pytestmark = pytest.mark.slow

LEAKED = "sk-proj-" + "Q" * 40


def batches(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "250"}).invoke(app, ["batches", *args])


def test_a_nights_quarantined_lines_are_shown_with_reasons_and_secrets_are_never_printed(
    s3_env: S3Settings,
) -> None:
    get_settings.cache_clear()
    store = ObjectStore.from_settings(s3_env)
    assert "no batches yet" in batches("list").output
    secret = {
        "messages": [
            {"role": "user", "content": f"my key is {LEAKED}"},
            {"role": "assistant", "content": "ok"},
        ]
    }
    lines = [orjson.dumps(e).decode() for e in make_examples(40, seed=4)] + make_dirty_lines(6, seed=4)
    lines.append(orjson.dumps(secret).decode())
    lines.append("[/x] [red]not json")  # rich markup in a line is data, shown as it is
    store.put_bytes("incoming/2026-11-01/a.jsonl", ("\n".join(lines) + "\n").encode())
    report = ingest_objects(store, find_new_objects(store), load_settings(), run_id="retrain-2026-11-01")
    assert report.quarantined >= 7 and "contains_secret" in report.by_reason

    listed = batches("list")
    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.output.splitlines() if report.batch_id in line]
    assert f"{report.lines_read:,}" in row and f"{report.quarantined} (" in row and "passed" in row

    shown = batches("show", report.batch_id, "--limit", "100", "--raw")
    assert shown.exit_code == 0, shown.output
    assert f"{report.accepted:,} accepted + {report.quarantined:,} quarantined" in shown.output
    assert "contains_secret" in shown.output and "(withheld: the line holds a secret)" in shown.output
    assert LEAKED not in shown.output and LEAKED[:20] not in shown.output
    assert "[/x] [red]not json" in shown.output

    as_json = json.loads(batches("show", report.batch_id, "--json", "--reason", "contains_secret").output)
    [secret_line] = as_json["quarantined_lines"]
    assert "raw" not in secret_line and secret_line["line_no"] == len(lines) - 1
    assert as_json["lines_read"] == as_json["accepted"] + as_json["quarantined"] == len(lines)

    assert (
        "no quarantined lines with reason eval_leak"
        in batches("show", report.batch_id, "--reason", "eval_leak").output
    )
    missing = batches("show", "b-nope")
    assert missing.exit_code == 1 and "`retrain batches list` shows the batches that exist" in missing.output
    get_settings.cache_clear()
