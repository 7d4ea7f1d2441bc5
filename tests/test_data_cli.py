"""`retrain data list | show` against a moto server: versions, shards, and the decision for each."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from typer.testing import CliRunner, Result

from retrain.cli.main import app
from retrain.config.services import S3Settings
from retrain.config.settings import get_settings
from retrain.curate.dataset import publish_version
from retrain.curate.shards import Shard
from retrain.promote.decision import Decision, save_decision
from retrain.registry.records import ModelRecord
from retrain.storage.object_store import ObjectStore
from retrain.train.failures import PermanentFailure, save_failure

pytestmark = pytest.mark.slow


def data(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "250"}).invoke(app, ["data", *args])


def _shard(name: str, examples: int) -> Shard:
    return Shard(
        f"curated/shards/{name}.jsonl", examples, examples - examples // 10, examples // 10, name * 8
    )


def test_versions_are_listed_newest_first_with_what_was_decided(s3_env: S3Settings) -> None:
    get_settings.cache_clear()
    store = ObjectStore.from_settings(s3_env)
    assert "no dataset versions yet" in data("list").output
    assert data("show").exit_code == 1

    first = publish_version(store, None, _shard("b-1", 300), "retrain-2026-11-01")
    second = publish_version(store, first, _shard("b-2", 2000), "retrain-2026-11-02")
    save_decision(
        store,
        Decision(
            dataset_version=first.version_id,
            run_id="retrain-2026-11-01",
            job_id="ftjob-1",
            candidate=ModelRecord(
                model_id="ft:gpt-4o-mini:acme:n1", provider="local", base_model="gpt-4o-mini-2024-07-18"
            ),
            production=ModelRecord(
                model_id="gpt-4o-mini-2024-07-18", provider="local", base_model="gpt-4o-mini-2024-07-18"
            ),
            promote=True,
            reason="promote: better by +0.27",
            candidate_score=0.27,
            production_score=0.0,
            report_markdown="",
        ),
    )

    listed = data("list")
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "│ ds-" in line]
    assert [line.split("│")[1].strip() for line in lines] == [second.version_id, first.version_id]
    assert "2,300" in lines[0] and "not decided" in lines[0]
    assert "promoted (0.2700 vs 0.0000)" in lines[1]

    shown = data("show", first.version_id)
    assert shown.exit_code == 0, shown.output
    assert "ft:gpt-4o-mini:acme:n1" in shown.output and "curated/shards/b-1.jsonl" in shown.output
    newest = json.loads(data("show", "--json").output)
    assert newest["version_id"] == second.version_id and newest["decision"] is None
    assert [shard["key"] for shard in newest["shards"]] == [asdict(s)["key"] for s in second.shards]
    as_list = json.loads(data("list", "--json", "--limit", "1").output)
    assert [entry["version_id"] for entry in as_list] == [second.version_id]

    markup = data("show", "ds-[/x]")
    assert markup.exit_code == 1 and markup.output.startswith("error: dataset version 'ds-[/x]' not found")
    missing = data("show", "ds-nope")
    assert missing.exit_code == 1
    assert missing.output.strip().endswith("`retrain data list` shows the versions that exist")
    get_settings.cache_clear()


def test_a_version_that_failed_permanently_says_so_and_why(s3_env: S3Settings) -> None:
    get_settings.cache_clear()
    store = ObjectStore.from_settings(s3_env)
    version = publish_version(store, None, _shard("b-1", 300), "retrain-2026-11-01")
    failure = PermanentFailure(
        dataset_version=version.version_id,
        job_id="ftjob-9",
        provider="local",
        code="safety_check_failed",
        message="the fine-tuned model failed the post-training safety checks",
        run_id="retrain-2026-11-01",
    )
    save_failure(store, failure)

    listed = data("list")
    assert (
        listed.exit_code == 0
        and "failed permanently (safety_check_failed), not trained again" in listed.output
    )
    shown = data("show")
    assert "job ftjob-9 failed permanently (safety_check_failed: the fine-tuned model" in shown.output
    as_json = json.loads(data("show", "--json").output)
    assert as_json["decision"] is None and as_json["failure"]["job_id"] == "ftjob-9"
