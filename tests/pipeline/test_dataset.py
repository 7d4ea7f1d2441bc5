"""Shards, dataset versions and the deterministic split, on moto in-process."""

from __future__ import annotations

import pytest

from retrain.curate.curated_keys import curated_keys
from retrain.curate.dataset import latest_version, publish_version
from retrain.curate.shards import is_validation, write_shard
from retrain.curate.training_files import build_training_files
from retrain.local.synthetic import make_examples
from retrain.storage.layout import keys_key
from retrain.storage.object_store import ObjectStore
from retrain.validate.canonical import example_hash, near_duplicate_key, normalise_prompt


@pytest.fixture
def store(moto_store: ObjectStore) -> ObjectStore:
    return moto_store


def _rows(examples: list[dict]) -> list[tuple[str, dict, str, int]]:
    return [(example_hash(ex), ex, "incoming/x.jsonl", i + 1) for i, ex in enumerate(examples)]


def test_split_is_a_pure_function_of_the_hash() -> None:
    hashes = [example_hash(ex) for ex in make_examples(2000, seed=5)]
    validation = [h for h in hashes if is_validation(h, 0.1)]
    assert 140 < len(validation) < 260
    assert [is_validation(h, 0.1) for h in hashes] == [is_validation(h, 0.1) for h in hashes]
    assert set(validation) <= {h for h in hashes if is_validation(h, 0.2)}


def test_versions_accumulate_shards_and_are_idempotent(store: ObjectStore) -> None:
    first = write_shard(store, "b-1", _rows(make_examples(50, seed=1)), 0.1)
    v1 = publish_version(store, None, first, "run-1")
    second = write_shard(store, "b-2", _rows(make_examples(70, seed=2)), 0.1)
    v2 = publish_version(store, v1, second, "run-2")

    assert (v1.examples, v2.examples) == (50, 120)
    assert v2.train + v2.validation == 120
    assert [s.key for s in v2.shards] == ["curated/shards/b-1.jsonl", "curated/shards/b-2.jsonl"]
    assert latest_version(store) == v2
    assert publish_version(store, v2, second, "run-2-again") == v2
    assert len(curated_keys(store, v2).hashes) == len(
        {example_hash(ex) for ex in make_examples(50, seed=1)}
        | {example_hash(ex) for ex in make_examples(70, seed=2)}
    )
    assert curated_keys(store, v2, skip_shard=second.key) == curated_keys(store, v1)


def test_the_curated_keys_come_from_the_keys_files_and_from_the_shards_without_one(
    store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = make_examples(60, seed=11), make_examples(40, seed=12)
    v1 = publish_version(store, None, write_shard(store, "b-1", _rows(first), 0.1), "run-1")
    v2 = publish_version(store, v1, write_shard(store, "b-2", _rows(second), 0.1), "run-2")
    expected = curated_keys(store, v2)
    assert expected.hashes == {example_hash(ex) for ex in first + second}
    assert expected.near == {near_duplicate_key(ex) for ex in first + second}
    assert (
        store.get_bytes(keys_key(v2.shards[0].key))
        and len(store.get_bytes(keys_key(v2.shards[0].key))) == 64 * 60
    )

    # The keys files alone: shards that cannot be read are not needed.
    for shard in v2.shards:
        store.put_bytes(shard.key, b"not read\n")
    assert curated_keys(store, v2) == expected

    # A shard curated before keys files existed, and one whose keys file is cut short, are read.
    v3 = publish_version(
        store, v2, write_shard(store, "b-3", _rows(make_examples(30, seed=13)), 0.1), "run-3"
    )
    v4 = publish_version(
        store, v3, write_shard(store, "b-4", _rows(make_examples(20, seed=14)), 0.1), "run-4"
    )
    store.delete(keys_key(v4.shards[2].key))
    store.put_bytes(keys_key(v4.shards[3].key), store.get_bytes(keys_key(v4.shards[3].key))[:-64])
    keys = curated_keys(store, v4)
    added = make_examples(30, seed=13) + make_examples(20, seed=14)
    assert keys.hashes == expected.hashes | {example_hash(ex) for ex in added}
    assert keys.near == expected.near | {near_duplicate_key(ex) for ex in added}
    assert "curated/keys/b-4.keys does not match curated/shards/b-4.jsonl" in caplog.text

    # Reading those two shards wrote their keys files: from now on the shards are not needed.
    for shard in v4.shards:
        store.put_bytes(shard.key, b"not read\n")
    assert curated_keys(store, v4) == keys


def test_training_files_keep_the_split_and_leave_out_eval_items(store: ObjectStore) -> None:
    examples = make_examples(200, seed=3)
    version = publish_version(store, None, write_shard(store, "b-1", _rows(examples), 0.2), "run")
    leaked = normalise_prompt(examples[0]["messages"])

    files = build_training_files(
        store, version, eval_prompts={leaked}, prompt_of=lambda ex: normalise_prompt(ex["messages"])
    )

    assert files.excluded_for_eval_leak >= 1
    total = files.train_examples + files.validation_examples + files.excluded_for_eval_leak
    assert total == 200
    assert files.train.count(b"\n") == files.train_examples
    assert files.validation_examples == sum(
        1
        for ex in examples
        if is_validation(example_hash(ex), 0.2) and normalise_prompt(ex["messages"]) != leaked
    )
