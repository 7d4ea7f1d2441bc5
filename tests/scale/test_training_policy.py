"""Training-set policies: all, the last N days, a capped stratified sample fixed per version."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from retrain.config.stage_settings import DatasetSettings
from retrain.curate.dataset import DatasetVersion, load_version, publish_version
from retrain.curate.shards import write_shard
from retrain.curate.training_files import MIN_FILE_EXAMPLES, build_training_files, training_set_policy
from retrain.exceptions import DataError
from retrain.local.synthetic import make_examples
from retrain.storage.object_store import ObjectStore
from retrain.validate.canonical import example_hash, normalise_prompt


def _prompt(example: dict[str, Any]) -> str:
    return normalise_prompt(example["messages"])


def _version(store: ObjectStore, sources: dict[str, int], policy: dict[str, Any]) -> DatasetVersion:
    """One shard per source key, published under the policy; examples are unique across shards."""
    version = None
    for index, (source, n) in enumerate(sources.items()):
        examples = make_examples(n, seed=100 + index)
        for line, example in enumerate(examples):
            example["messages"][1]["content"] += f" (ticket {index}-{line})"
        rows = [(example_hash(ex), ex, source, line + 1) for line, ex in enumerate(examples)]
        shard = write_shard(store, f"b-{index}", rows, 0.1)
        version = publish_version(store, version, shard, f"run-{index}", policy=policy)
    assert version is not None
    return version


def _sources(files: bytes, store: ObjectStore, version: DatasetVersion) -> Counter[str]:
    by_example = {}
    for shard in version.shards:
        for line in store.iter_lines(shard.key):
            row = orjson.loads(line)
            by_example[orjson.dumps(row["example"])] = row["source"]
    return Counter(by_example[line] for line in files.splitlines())


def _both(files: Any) -> bytes:
    return bytes(files.train + files.validation)


def test_policies_from_settings() -> None:
    assert training_set_policy(DatasetSettings()) == {"name": "all"}
    assert training_set_policy(DatasetSettings(policy="recent", recent_days=7)) == {
        "name": "recent",
        "days": 7,
    }
    assert training_set_policy(DatasetSettings(policy="capped", max_examples=10, stratify_by="tag")) == {
        "name": "capped",
        "max_examples": 10,
        "stratify_by": "tag",
        "tag": "intent",
    }


def test_all_keeps_every_example_and_the_version_records_the_policy(moto_store: ObjectStore) -> None:
    version = _version(moto_store, {"incoming/2026-11-01/a.jsonl": 40, "incoming/2026-11-02/b.jsonl": 60}, {})
    assert load_version(moto_store, version.version_id).policy == {"name": "all"}
    files = build_training_files(moto_store, version, eval_prompts=set(), prompt_of=_prompt)
    assert files.train_examples + files.validation_examples == 100
    assert files.excluded_by_policy == 0 and files.policy == {"name": "all"}


def test_recent_keeps_the_last_n_days_up_to_the_version_date(moto_store: ObjectStore) -> None:
    policy = {"name": "recent", "days": 3}
    version = _version(
        moto_store,
        {
            "incoming/2020-01-01/old.jsonl": 30,
            "incoming/2020-01-05/old.jsonl": 20,
            f"incoming/{_today()}/new.jsonl": 150,
        },
        policy,
    )
    assert load_version(moto_store, version.version_id).policy == policy
    files = build_training_files(moto_store, version, eval_prompts=set(), prompt_of=_prompt)
    assert dict(_sources(_both(files), moto_store, version)) == {f"incoming/{_today()}/new.jsonl": 150}
    assert files.excluded_by_policy == 50
    wider = build_training_files(
        moto_store, version, eval_prompts=set(), prompt_of=_prompt, policy={"name": "recent", "days": 100_000}
    )
    assert wider.train_examples + wider.validation_examples == 200


def test_capped_samples_each_source_in_proportion_and_is_fixed_per_version(moto_store: ObjectStore) -> None:
    policy = {"name": "capped", "max_examples": 100, "stratify_by": "source"}
    sources = {
        "incoming/2026-11-01/zendesk/a.jsonl": 150,
        "incoming/2026-11-02/zendesk/b.jsonl": 150,
        "incoming/2026-11-02/email.jsonl": 100,
    }
    version = _version(moto_store, sources, policy)
    leaked = make_examples(150, seed=100)[0]
    files = build_training_files(moto_store, version, eval_prompts={_prompt(leaked)}, prompt_of=_prompt)
    kept = files.train_examples + files.validation_examples
    assert kept == 100
    per_source = _sources(_both(files), moto_store, version)
    zendesk = (
        per_source["incoming/2026-11-01/zendesk/a.jsonl"] + per_source["incoming/2026-11-02/zendesk/b.jsonl"]
    )
    assert (zendesk, per_source["incoming/2026-11-02/email.jsonl"]) == (75, 25)
    assert files.excluded_by_policy == 400 - files.excluded_for_eval_leak - 100
    assert _prompt(leaked).encode() not in _both(files)

    again = build_training_files(moto_store, version, eval_prompts={_prompt(leaked)}, prompt_of=_prompt)
    assert (again.train, again.validation) == (files.train, files.validation)
    other = DatasetVersion(**{**version.__dict__, "version_id": "ds-another"})
    resampled = build_training_files(moto_store, other, eval_prompts=set(), prompt_of=_prompt)
    assert resampled.train != files.train


def test_capped_by_tag_uses_tag_folders(moto_store: ObjectStore) -> None:
    policy = {"name": "capped", "max_examples": 300, "stratify_by": "tag", "tag": "intent"}
    version = _version(
        moto_store,
        {
            "incoming/2026-11-01/app/intent=billing/a.jsonl": 900,
            "incoming/2026-11-01/app/intent=login/a.jsonl": 300,
            "incoming/2026-11-01/app/untagged.jsonl": 300,
        },
        policy,
    )
    files = build_training_files(moto_store, version, eval_prompts=set(), prompt_of=_prompt)
    per_source = _sources(_both(files), moto_store, version)
    assert sorted(per_source.values()) == [60, 60, 180]
    assert per_source["incoming/2026-11-01/app/intent=billing/a.jsonl"] == 180


def test_an_unknown_policy_is_a_data_error(moto_store: ObjectStore) -> None:
    version = _version(moto_store, {"incoming/2026-11-01/a.jsonl": 5}, {"name": "newest-first"})
    with pytest.raises(DataError, match="unknown training-set policy"):
        build_training_files(moto_store, version, eval_prompts=set(), prompt_of=_prompt)


def _today() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).date().isoformat()


def test_a_validation_split_too_small_for_a_file_is_left_out_not_trained_on(moto_store: ObjectStore) -> None:
    version = _version(moto_store, {"incoming/2026-11-01/a.jsonl": 40}, {})
    validation_rows = sum(
        1
        for line in moto_store.iter_lines(version.shards[0].key)
        if orjson.loads(line)["split"] == "validation"
    )
    assert 0 < validation_rows < MIN_FILE_EXAMPLES
    files = build_training_files(moto_store, version, eval_prompts=set(), prompt_of=_prompt)
    assert (files.validation, files.validation_examples) == (b"", 0)
    assert files.train_examples == 40 - validation_rows
