"""Incremental discovery: the watermark, late writes, reconciliation and crash-safe bookkeeping."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest
from moto import mock_aws

from retrain.config.settings import Settings
from retrain.exceptions import StorageError
from retrain.ingest.batches import ingest_objects
from retrain.ingest.discovery import discover, find_new_objects, read_watermark, record_processed
from retrain.local.synthetic import make_examples
from retrain.storage.layout import (
    BATCH_PREFIX,
    LEGACY_PROCESSED_KEY,
    PENDING_KEY,
    PROCESSED_PREFIX,
    partition_of,
    source_of,
    tags_of,
)
from retrain.storage.object_store import ObjectStore


@pytest.fixture
def store() -> Iterator[ObjectStore]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="scale-bucket")
        yield ObjectStore(client, "scale-bucket", prefix="team/")


def land(store: ObjectStore, key: str, n: int = 3, seed: int = 0) -> None:
    lines = [orjson.dumps(example) for example in make_examples(n, seed=seed)]
    store.put_bytes(key, b"\n".join(lines) + b"\n")


def ingest_everything_new(store: ObjectStore) -> list[str]:
    new = find_new_objects(store)
    record_processed(store, "b-test", [(info.key, info.etag) for info in new])
    return [info.key for info in new]


def test_key_layout_helpers() -> None:
    assert partition_of("incoming/2026-11-05/zendesk/part-1.jsonl") == "2026-11-05"
    assert partition_of("incoming/2026-13-45/x.jsonl") == "_undated"
    assert partition_of("incoming/x.jsonl") == "_undated"
    assert source_of("incoming/2026-11-05/zendesk/intent=billing/part-1.jsonl") == "zendesk"
    assert source_of("incoming/2026-11-05/support-chats.jsonl.gz") == "support-chats"
    assert source_of("incoming/legacy.jsonl") == "legacy"
    assert tags_of("incoming/2026-11-05/zendesk/intent=billing/part-1.jsonl") == {"intent": "billing"}


def test_the_watermark_limits_the_listing_to_recent_partitions(store: ObjectStore) -> None:
    for day in range(1, 11):
        land(store, f"incoming/2026-11-{day:02d}/a.jsonl")
    first = discover(store)
    assert first.reconciled and first.listed == 10
    record_processed(store, "b-1", [(info.key, info.etag) for info in first.new])
    assert read_watermark(store) == "2026-11-10"

    land(store, "incoming/2026-11-11/a.jsonl")
    second = discover(store, overlap_days=2)
    assert second.start_after == "incoming/2026-11-08"
    assert [info.key for info in second.new] == ["incoming/2026-11-11/a.jsonl"]
    assert second.listed == 4  # 11-08, 11-09, 11-10, 11-11: not the whole prefix
    assert second.partitions_read == 4


def test_late_writes_inside_the_overlap_are_found_older_ones_only_by_reconciliation(
    store: ObjectStore,
) -> None:
    for day in range(1, 8):
        land(store, f"incoming/2026-11-{day:02d}/a.jsonl")
    ingest_everything_new(store)
    land(store, "incoming/2026-11-06/late.jsonl")
    land(store, "incoming/2026-11-02/straggler.jsonl")

    assert ingest_everything_new(store) == ["incoming/2026-11-06/late.jsonl"]
    assert find_new_objects(store) == []
    reconciled = discover(store, reconcile=True)
    assert reconciled.reconciled and reconciled.listed == 9
    assert [info.key for info in reconciled.new] == ["incoming/2026-11-02/straggler.jsonl"]
    record_processed(store, "b-r", [(info.key, info.etag) for info in reconciled.new])
    assert discover(store, reconcile=True).new == []
    assert read_watermark(store) == "2026-11-07"


def test_a_changed_etag_is_new_and_undated_keys_are_always_listed(store: ObjectStore) -> None:
    land(store, "incoming/2026-11-01/a.jsonl", seed=1)
    land(store, "incoming/zz-manual.jsonl", seed=2)
    assert len(ingest_everything_new(store)) == 2
    land(store, "incoming/2026-11-01/a.jsonl", seed=3)
    land(store, "incoming/zz-manual.jsonl", seed=4)
    assert sorted(info.key for info in find_new_objects(store)) == [
        "incoming/2026-11-01/a.jsonl",
        "incoming/zz-manual.jsonl",
    ]
    assert store.exists(f"{PROCESSED_PREFIX}_undated.json")


def test_future_partitions_do_not_move_the_watermark_past_tomorrow(store: ObjectStore) -> None:
    land(store, "incoming/2026-11-01/a.jsonl")
    land(store, "incoming/2099-01-01/typo.jsonl")
    assert len(ingest_everything_new(store)) == 2
    assert read_watermark(store) == "2026-11-01"


def test_the_legacy_single_index_is_migrated(store: ObjectStore) -> None:
    land(store, "incoming/2026-11-01/a.jsonl")
    land(store, "incoming/2026-11-02/b.jsonl")
    info = store.head("incoming/2026-11-01/a.jsonl")
    assert info is not None
    store.put_json(LEGACY_PROCESSED_KEY, {info.key: info.etag})
    assert [item.key for item in find_new_objects(store)] == ["incoming/2026-11-02/b.jsonl"]
    assert not store.exists(LEGACY_PROCESSED_KEY)
    assert read_watermark(store) == "2026-11-01"


def _fail_puts_under(store: ObjectStore, client: Any, prefix: str, after: int) -> dict[str, int]:
    """A real S3 error (botocore raises before sending) on the (after+1)-th put under prefix."""
    seen = {"puts": 0}

    def hook(params: dict[str, Any], **_: object) -> None:
        if params["Key"].startswith(store.prefix + prefix):
            seen["puts"] += 1
            if seen["puts"] > after:
                raise StorageError("injected: S3 went away while writing the processed index")

    client.meta.events.register("before-parameter-build.s3.PutObject", hook)
    return seen


def test_a_crash_while_recording_a_batch_is_finished_by_the_next_discovery() -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="crash-bucket")
        store = ObjectStore(client, "crash-bucket")
        for day in (1, 2, 3):
            land(store, f"incoming/2026-11-0{day}/a.jsonl", n=20, seed=day)
        settings = Settings()
        objects = find_new_objects(store)
        _fail_puts_under(store, client, PROCESSED_PREFIX, after=1)
        with pytest.raises(StorageError, match="injected"):
            ingest_objects(store, objects, settings, run_id="night-1")
        assert store.get_json(PENDING_KEY)["batch_id"]
        assert len(list(store.list(PROCESSED_PREFIX))) == 1

        fresh = ObjectStore(boto3.client("s3", region_name="us-east-1"), "crash-bucket")
        assert find_new_objects(fresh) == []
        assert len(list(fresh.list(PROCESSED_PREFIX))) == 3
        assert fresh.get_json(PENDING_KEY)["batch_id"] is None
        assert read_watermark(fresh) == "2026-11-03"
        assert len(list(fresh.list(BATCH_PREFIX))) == 1
