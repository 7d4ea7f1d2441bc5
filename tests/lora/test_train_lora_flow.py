"""The `train-lora` flow in a real Prefect run on the tiny model, against S3 (moto's server): it
trains the run whose files the nightly flow put in the bucket, saves the adapter create-only with
its manifest, shows its progress and loss, and a second run of the same key trains nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.train_lora import train_lora
from retrain.config.services import S3Settings
from retrain.config.stage_settings import LoraSettings
from retrain.exceptions import ConfigError
from retrain.local.facts import fact_examples, facts
from retrain.storage.object_store import ObjectStore
from retrain.train.lora.runs import lora_run, put_training_inputs, read_manifest, read_progress

pytestmark = pytest.mark.slow


def _jsonl(examples: list[dict[str, object]]) -> bytes:
    return b"\n".join(orjson.dumps(example) for example in examples)


def test_a_run_trains_once_and_saves_its_adapter(
    prefect_harness: None, s3_env: S3Settings, tiny_model: Path
) -> None:
    store = ObjectStore.from_settings(s3_env)
    store.ensure_bucket()
    lora = LoraSettings(base_model=str(tiny_model), epochs=2, batch_size=4)
    run = lora_run(lora, "v20261204-a")
    put_training_inputs(store, run, _jsonl(fact_examples(facts(3))), _jsonl(fact_examples(facts(3))[:3]))
    parameters = run.parameters() | {"config": lora.model_dump(mode="json")}

    state = train_lora(**parameters, return_state=True)
    saved = state.result()
    manifest = read_manifest(store, run)
    assert manifest is not None and saved == manifest.__dict__
    assert manifest.uri == store.uri(run.adapter_prefix)
    assert {"adapter_config.json", "adapter_model.safetensors", "metrics.json"} <= set(manifest.files)
    keys = {info.key.removeprefix(run.adapter_prefix) for info in store.list(run.adapter_prefix)}
    assert keys == set(manifest.files)
    progress = read_progress(store, run)
    assert progress is not None and progress.step == progress.total_steps > 0 and progress.loss

    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    kinds = {(artifact.key, artifact.type) for artifact in artifacts}
    assert {("training-progress", "progress"), ("training-metrics", "markdown")} <= kinds

    written = {info.key: info.last_modified for info in store.list(run.prefix)}
    again = train_lora(**parameters)
    assert again == saved  # found, not trained again: nothing in the run's prefix was rewritten
    assert {info.key: info.last_modified for info in store.list(run.prefix)} == written


def test_settings_that_do_not_match_the_runs_hash_are_refused(
    prefect_harness: None, s3_env: S3Settings, tiny_model: Path
) -> None:
    lora = LoraSettings(base_model=str(tiny_model))
    run = lora_run(lora, "v20261204-b")
    changed = lora.model_copy(update={"epochs": 9}).model_dump(mode="json")
    with pytest.raises(ConfigError, match="do not hash to"):
        train_lora(**run.parameters(), config=changed)
