"""The registry's read path at scale: heads snapshots, the LATEST hint, and the cached resolver."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from retrain.exceptions import UnknownAlias
from retrain.registry.records import ModelRecord
from retrain.registry.registry import Registry
from retrain.registry.resolver import AliasReader, CachedResolver
from retrain.storage.layout import REGISTRY_LATEST_KEY as LATEST_KEY
from retrain.storage.layout import heads_key, snapshot_key
from retrain.storage.object_store import ObjectStore


def record(model_id: str) -> ModelRecord:
    return ModelRecord(model_id=model_id, provider="local", base_model="base-1")


class Calls:
    """Counts the S3 operations a client sends (botocore's own event hooks)."""

    def __init__(self, client: Any) -> None:
        self.ops: Counter[str] = Counter()
        client.meta.events.register("before-call.s3.*", self._count)

    def _count(self, model: Any, **_: object) -> None:
        self.ops[model.name] += 1

    def take(self) -> Counter[str]:
        ops, self.ops = self.ops, Counter()
        return ops


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="reg-bucket")
        yield s3


@pytest.fixture
def store(client: Any) -> ObjectStore:
    return ObjectStore(client, "reg-bucket", prefix="team/")


def write_events(store: ObjectStore, n: int, *, snapshot_every: int = 10) -> Registry:
    registry = Registry(store, snapshot_every=snapshot_every)
    for i in range(1, n + 1):
        registry.set("production" if i % 2 else "candidate", record(f"ft:{i}"), actor="t", reason="r")
    return registry


def test_snapshots_come_with_a_small_heads_file_and_a_latest_hint(store: ObjectStore) -> None:
    write_events(store, 25)
    heads = store.get_json(heads_key(20))
    assert store.get_json(LATEST_KEY) == {**heads, "snapshot": 20}
    assert heads["seq"] == 20 and sorted(heads["aliases"]) == ["candidate", "production"]
    full = store.head(snapshot_key(20))
    small = store.head(heads_key(20))
    assert full is not None and small is not None and small.size < full.size

    reader = AliasReader(store)
    assert reader.resolve("production").model_id == "ft:25"
    assert reader.heads().seq == 25
    store.delete(snapshot_key(20))  # the read path never needs the full snapshot
    store.delete(snapshot_key(10))
    assert AliasReader(store).resolve("candidate").model_id == "ft:24"


def test_a_cold_read_is_two_gets_without_any_listing(store: ObjectStore, client: Any) -> None:
    write_events(store, 40)
    calls = Calls(client)
    assert AliasReader(store).resolve("production").model_id == "ft:39"
    assert calls.take() == Counter({"GetObject": 2})  # LATEST (it carries the heads), probe of event 41


def test_a_stale_missing_or_broken_hint_is_only_slower(store: ObjectStore) -> None:
    write_events(store, 35)
    store.put_json(LATEST_KEY, store.get_json(heads_key(10)))  # a writer of snapshot 10 wrote last
    assert AliasReader(store).resolve("production").model_id == "ft:35"
    store.put_json(LATEST_KEY, {"seq": 10})
    assert AliasReader(store).resolve("production").model_id == "ft:35"
    assert Registry(store).state().seq == 35
    store.put_bytes(LATEST_KEY, b"not json")
    assert AliasReader(store).resolve("production").model_id == "ft:35"
    store.delete(LATEST_KEY)
    assert AliasReader(store).resolve("production").model_id == "ft:35"
    store.put_json(LATEST_KEY, {"seq": 990})  # names a snapshot that does not exist
    assert AliasReader(store).resolve("candidate").model_id == "ft:34"
    assert Registry(store).resolve("candidate").model_id == "ft:34"


def test_registries_written_before_heads_existed_still_resolve(store: ObjectStore) -> None:
    write_events(store, 12)
    store.delete(heads_key(10))
    store.delete(LATEST_KEY)
    assert AliasReader(store).resolve("candidate").model_id == "ft:12"
    with pytest.raises(UnknownAlias, match="known aliases: candidate, production"):
        AliasReader(store).resolve("staging")


def test_the_cached_resolver_reads_s3_once_per_ttl(store: ObjectStore, client: Any) -> None:
    write_events(store, 20)
    now = [0.0]
    resolver = CachedResolver(AliasReader(store), ttl_seconds=30, clock=lambda: now[0])
    calls = Calls(client)
    for _ in range(100):
        assert resolver.resolve("production").model_id == "ft:19"
    assert sum(calls.take().values()) == 2
    now[0] = 29.0
    assert resolver.resolve("production").model_id == "ft:19"
    assert sum(calls.take().values()) == 0
    Registry(store).set("production", record("ft:new"), actor="t", reason="r")
    calls.take()
    now[0] = 31.0
    assert resolver.resolve("production").model_id == "ft:new"
    assert calls.take() == Counter({"GetObject": 1, "ListObjectsV2": 1})  # probe finds 21, list after it


def test_a_reader_that_replays_a_long_tail_leaves_heads_for_the_next_one(
    store: ObjectStore, client: Any
) -> None:
    write_events(store, 35, snapshot_every=1000)
    assert not store.exists(LATEST_KEY)
    assert AliasReader(store).resolve("production").model_id == "ft:35"
    assert store.get_json(LATEST_KEY)["seq"] == 35
    assert store.exists(heads_key(35))
    calls = Calls(client)
    assert AliasReader(store).resolve("candidate").model_id == "ft:34"
    assert calls.take() == Counter({"GetObject": 2})
    assert Registry(store).state().seq == 35  # writers still find no full snapshot, and replay


def test_a_reader_without_write_access_stops_trying(store: ObjectStore, client: Any) -> None:
    from botocore.exceptions import ClientError

    write_events(store, 25, snapshot_every=1000)
    denied: list[str] = []

    def deny(params: dict[str, Any], **_: object) -> None:
        denied.append(params["Key"])
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "read-only"}}, "PutObject")

    client.meta.events.register("before-parameter-build.s3.PutObject", deny)
    reader = AliasReader(store)
    assert reader.resolve("production").model_id == "ft:25"
    write_events_after = Registry(
        ObjectStore(boto3.client("s3", region_name="us-east-1"), "reg-bucket", "team/")
    )
    for i in range(26, 40):
        write_events_after.set("production", record(f"ft:{i}"), actor="t", reason="r")
    assert reader.resolve("production").model_id == "ft:39"
    assert len(denied) == 1
