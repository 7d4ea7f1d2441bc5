from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from retrain.cli.validate import register
from retrain.storage.object_store import ObjectStore

from ..s3_servers import moto_server
from .conftest import CHAT_SUITE, PREFERENCE_SUITE, clean_examples, jsonl


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("RETRAIN_VALIDATION__SUITE_PATH", str(CHAT_SUITE))
    monkeypatch.setenv("RETRAIN_VALIDATION__PREFERENCE_SUITE_PATH", str(PREFERENCE_SUITE))
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Test root."""

    register(root)
    return root


def test_clean_file_exits_0_and_writes_the_report(app: typer.Typer, tmp_path: Path) -> None:
    source = tmp_path / "clean.jsonl.gz"
    source.write_bytes(gzip.compress(jsonl(*clean_examples(25))))
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["validate", str(source), "--report", str(report), "--model", "gpt-4.1-mini"]
    )
    assert result.exit_code == 0, result.output
    assert "batch passes its gates" in result.output
    summary = json.loads(report.read_text())
    assert summary["total_lines"] == 25 and summary["accepted"] == 25 and summary["quarantined"] == 0
    assert summary["passed"] is True
    assert {"by_reason", "token_stats", "cost_estimate_usd", "gates", "per_source"} <= set(summary)
    assert summary["cost"]["usd_per_million"] == 5.0


def test_dirty_file_exits_1_and_writes_the_quarantine(app: typer.Typer, tmp_path: Path) -> None:
    source = tmp_path / "dirty.jsonl"
    source.write_bytes(jsonl(*clean_examples(20)) + b"nope\n" * 10)
    quarantine = tmp_path / "q.jsonl"
    report = tmp_path / "r.json"
    args = ["validate", str(source), "--quarantine", str(quarantine), "--report", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "max_quarantine_rate" in result.output
    lines = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert len(lines) == 10 and lines[0]["reasons"][0]["code"] == "not_json" and lines[0]["raw"] == "nope"
    summary = json.loads(report.read_text())
    assert summary["by_reason"] == {"not_json": 10}
    (failed,) = [gate for gate in summary["gates"] if not gate["passed"]]
    assert failed["name"] == "max_quarantine_rate" and failed["threshold"] == 0.2
    assert failed["detail"] == "10 of 30 non-duplicate lines quarantined (33.3%), at most 20.0% allowed"
    assert failed["message"] == f"max_quarantine_rate: {failed['detail']}"


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "/nonexistent/file.jsonl"],
        ["validate"],
        ["validate", "x.jsonl", "--format", "yaml"],
        ["validate", "s3://bucket-only"],
    ],
)
def test_usage_errors_exit_2(app: typer.Typer, args: list[str], tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(jsonl(*clean_examples(12)))
    result = CliRunner().invoke(app, [a.replace("x.jsonl", str(tmp_path / "x.jsonl")) for a in args])
    assert result.exit_code == 2, result.output


def test_a_path_that_looks_like_rich_markup_is_printed_as_it_is(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["validate", "/tmp/[/x] [red]data.jsonl"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: /tmp/[/x] [red]data.jsonl does not exist"


def test_a_folder_validates_its_jsonl_files(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl(*clean_examples(8)))
    (tmp_path / "b.jsonl").write_bytes(jsonl(*clean_examples(8, start=8)))
    (tmp_path / "notes.txt").write_text("ignored")
    report = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert set(json.loads(report.read_text())["per_source"]) == {
        str(tmp_path / "a.jsonl"),
        str(tmp_path / "b.jsonl"),
    }


@pytest.mark.slow
def test_s3_uris_are_read_through_the_object_store(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with moto_server() as s3:
        monkeypatch.setenv("RETRAIN_S3__ENDPOINT_URL", str(s3.endpoint_url))
        monkeypatch.setenv("RETRAIN_S3__ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("RETRAIN_S3__SECRET_ACCESS_KEY", "testing")
        ObjectStore.from_settings(s3).put_bytes("incoming/day.jsonl", jsonl(*clean_examples(15)))
        report = tmp_path / "r.json"
        uri = f"s3://{s3.bucket}/incoming/day.jsonl"
        result = CliRunner().invoke(app, ["validate", uri, "--report", str(report)])
        assert result.exit_code == 0, result.output
        assert json.loads(report.read_text())["per_source"][uri]["accepted"] == 15
        missing = CliRunner().invoke(app, ["validate", f"s3://{s3.bucket}/incoming/none.jsonl"])
        assert missing.exit_code == 2
        assert missing.output.strip() == f"error: s3://{s3.bucket}/incoming/none.jsonl does not exist"
        nowhere = CliRunner().invoke(app, ["validate", "s3://no-such-bucket/incoming/day.jsonl"])
        assert nowhere.exit_code == 2
        assert nowhere.output.strip() == (
            "error: s3://no-such-bucket/incoming/day.jsonl does not exist: bucket 'no-such-bucket' does not "
            "exist (check the URI, or RETRAIN_S3__ENDPOINT_URL)"
        )


@pytest.mark.parametrize(
    ("setting", "args", "error"),
    [
        ("missing.json", [], "error: expectation suite {tmp}/missing.json not found"),
        (None, ["--model", "gpt-9"], "error: no example token limit for model 'gpt-9'"),
    ],
)
def test_what_stops_validation_exits_2_not_1_which_means_a_failed_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None, args: list[str], error: str
) -> None:
    from retrain.cli.main import app as retrain_app

    monkeypatch.setenv("RETRAIN_VALIDATION__SUITE_PATH", str(tmp_path / setting if setting else CHAT_SUITE))
    (tmp_path / "x.jsonl").write_bytes(jsonl(*clean_examples(12)))
    result = CliRunner().invoke(retrain_app, ["validate", str(tmp_path / "x.jsonl"), *args])
    assert result.exit_code == 2, result.output
    (line,) = result.output.splitlines()
    assert line.startswith(error.format(tmp=tmp_path)), line


def _words(output: str) -> str:
    return " ".join(output.split())


def test_an_empty_file_says_it_is_empty(app: typer.Typer, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.jsonl"
    blank.write_bytes(b"\n\n  \n")
    result = CliRunner().invoke(app, ["validate", str(empty), str(blank)])
    assert f"note: {empty} is empty (0 bytes): there is nothing in it to validate" in _words(result.output)
    assert f"note: {blank} holds only blank lines (5 bytes): there is nothing to validate" in _words(
        result.output
    )


def test_a_gz_name_that_is_not_gzip_is_said_to_be_read_as_text(app: typer.Typer, tmp_path: Path) -> None:
    source = tmp_path / "named.jsonl.gz"
    source.write_bytes(jsonl(*clean_examples(25)))
    result = CliRunner().invoke(app, ["validate", str(source)])
    assert result.exit_code == 0, result.output
    expected = f"note: {source} is named .gz but is not gzip-compressed: it was read as plain text"
    assert expected in _words(result.output)
    really = tmp_path / "really.jsonl.gz"
    really.write_bytes(gzip.compress(jsonl(*clean_examples(25))))
    assert "note:" not in CliRunner().invoke(app, ["validate", str(really)]).output


def test_the_reasons_table_shows_the_count_and_limit_behind_too_many_tokens(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_VALIDATION__EXAMPLE_TOKEN_LIMITS", '{"gpt": 20}')
    long = {"messages": [{"role": "user", "content": "word " * 60}, {"role": "assistant", "content": "ok"}]}
    source = tmp_path / "long.jsonl"
    source.write_bytes(jsonl(*clean_examples(2), long))
    report = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["validate", str(source), "--report", str(report)], terminal_width=200)
    example = json.loads(report.read_text())["reason_examples"]["too_many_tokens"]
    assert example.startswith("line ") and "tokens, over the 20-token example limit" in example
    assert example in _words(result.output)
