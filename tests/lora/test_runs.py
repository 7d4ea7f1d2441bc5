"""A lora run's files in the bucket: training inputs create-only, the adapter saved with a
manifest whose hash names its content, and the round trip back to a folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrain.config.stage_settings import LoraSettings
from retrain.exceptions import DataError
from retrain.storage.object_store import ObjectStore
from retrain.train.lora.runs import (
    download_adapter,
    lora_config_hash,
    lora_run,
    put_training_inputs,
    read_manifest,
    save_adapter,
)


def _adapter(folder: Path, weights: bytes = b"weights") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"r": 16}')
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "nested").mkdir(exist_ok=True)
    (folder / "nested" / "tokenizer.json").write_text("{}")
    return folder


def test_the_config_hash_follows_what_changes_learning() -> None:
    lora = LoraSettings()
    assert lora_config_hash(lora) == lora_config_hash(LoraSettings())
    assert lora_config_hash(lora) != lora_config_hash(lora.model_copy(update={"epochs": lora.epochs + 1}))
    assert lora_config_hash(lora) != lora_config_hash(lora, init_adapter_hash="abc")
    assert lora_config_hash(lora) == lora_config_hash(lora.model_copy(update={"device": "cpu"}))
    first, second = lora_run(lora, "v1"), lora_run(lora, "v1")
    assert first.idempotency_key() == second.idempotency_key() != first.idempotency_key(attempt=2)


def test_training_inputs_are_written_once_and_never_changed(moto_store: ObjectStore) -> None:
    run = lora_run(LoraSettings(), "v1")
    put_training_inputs(moto_store, run, b"train", b"valid")
    put_training_inputs(moto_store, run, b"train", b"valid")  # a re-run after a crash: same bytes
    with pytest.raises(DataError, match="already holds other training data"):
        put_training_inputs(moto_store, run, b"other", b"valid")
    assert moto_store.get_bytes(run.train_key) == b"train"


def test_a_saved_adapter_has_a_manifest_and_comes_back_whole(moto_store: ObjectStore, tmp_path: Path) -> None:
    run = lora_run(LoraSettings(), "v1")
    manifest = save_adapter(moto_store, run, _adapter(tmp_path / "a"), train_tokens=123)
    assert manifest.uri == moto_store.uri(run.adapter_prefix)
    assert set(manifest.files) == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "nested/tokenizer.json",
    }
    assert read_manifest(moto_store, run) == manifest and manifest.train_tokens == 123
    same = save_adapter(moto_store, run, _adapter(tmp_path / "b"), train_tokens=123)
    assert same.content_hash == manifest.content_hash  # the same bytes: the same hash

    other = save_adapter(
        moto_store, lora_run(LoraSettings(), "v2"), _adapter(tmp_path / "c", b"x"), train_tokens=1
    )
    assert other.content_hash != manifest.content_hash

    back = download_adapter(moto_store, run.adapter_prefix, tmp_path / "back")
    assert (back / "nested" / "tokenizer.json").read_text() == "{}"
    assert (back / "adapter_model.safetensors").read_bytes() == b"weights"
    with pytest.raises(DataError, match="no adapter at"):
        download_adapter(moto_store, "models/lora/none/adapter/", tmp_path / "none")


def test_an_adapter_with_other_bytes_is_not_overwritten(moto_store: ObjectStore, tmp_path: Path) -> None:
    run = lora_run(LoraSettings(), "v1")
    save_adapter(moto_store, run, _adapter(tmp_path / "a"), train_tokens=None)
    with pytest.raises(DataError, match="already holds other adapter files"):
        save_adapter(moto_store, run, _adapter(tmp_path / "b", b"different"), train_tokens=None)
