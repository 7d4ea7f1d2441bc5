"""One storage suite, three S3 backends: moto in-process, moto's server, and localbucket."""

from __future__ import annotations

import gzip

import pytest
from pydantic import SecretStr

from retrain.config.services import S3Settings
from retrain.exceptions import AlreadyExists, BucketNotFound, ObjectNotFound, StorageUnavailable
from retrain.storage import object_store
from retrain.storage.object_store import ObjectStore
from tests.s3_servers import free_port, moto_server, next_second


@pytest.fixture
def store(any_s3_store: ObjectStore) -> ObjectStore:
    return any_s3_store


def test_bytes_json_and_jsonl_round_trip(store: ObjectStore) -> None:
    store.put_bytes("state/raw.bin", b"\x00\x01")
    store.put_json("state/doc.json", {"a": [1, 2]})
    store.put_jsonl("curated/shard.jsonl", [{"n": 1}, {"n": 2}])

    assert store.get_bytes("state/raw.bin") == b"\x00\x01"
    assert store.get_json("state/doc.json") == {"a": [1, 2]}
    assert list(store.iter_lines("curated/shard.jsonl")) == [b'{"n":1}', b'{"n":2}']


def test_create_only_write_refuses_second_writer(store: ObjectStore) -> None:
    store.put_json("registry/log/000000000001.json", {"seq": 1}, create_only=True)
    with pytest.raises(AlreadyExists, match="already exists"):
        store.put_json("registry/log/000000000001.json", {"seq": 1, "other": True}, create_only=True)
    assert store.get_json("registry/log/000000000001.json") == {"seq": 1}


def test_listing_follows_pagination_and_start_after(store: ObjectStore) -> None:
    keys = [f"incoming/2026-11-{day:02d}/part-{i:04d}.jsonl" for day in (1, 2) for i in range(600)]
    for key in keys:
        store.put_bytes(key, b"{}\n")
    store.put_bytes("other/x", b"")

    listed = [info.key for info in store.list("incoming/")]
    assert listed == sorted(keys)
    after = [info.key for info in store.list("incoming/", start_after="incoming/2026-11-01/part-0599.jsonl")]
    assert after == sorted(keys)[600:]


def test_streaming_lines_across_chunk_boundaries(store: ObjectStore) -> None:
    lines = [f'{{"i": {i}, "pad": "{"x" * (i % 97)}"}}'.encode() for i in range(5000)]
    store.put_bytes("incoming/big.jsonl", b"\n".join(lines))  # no trailing newline
    streamed = list(store.iter_lines("incoming/big.jsonl"))
    assert streamed == lines
    gz = gzip.compress(b"\n".join(lines))
    store.put_bytes("incoming/big.jsonl.gz", gz)
    assert b"".join(store.iter_chunks("incoming/big.jsonl.gz", chunk_size=1024)) == gz


def test_head_exists_delete_and_etag_changes(store: ObjectStore) -> None:
    assert store.head("state/missing") is None
    first = store.put_bytes("state/x", b"one")
    info = store.head("state/x")
    assert info is not None and info.etag == first and info.size == 3
    second = store.put_bytes("state/x", b"two")
    assert second != first
    store.delete("state/x")
    assert not store.exists("state/x")
    with pytest.raises(ObjectNotFound, match="does not exist"):
        store.get_bytes("state/x")
    assert store.get_json_or_none("state/x") is None


def test_keys_are_relative_to_the_prefix(store: ObjectStore) -> None:
    store.put_bytes("curated/a", b"1")
    assert store.uri("curated/a").endswith("/team/curated/a")
    assert [info.key for info in store.list("curated/")] == ["curated/a"]


def test_iter_json_reads_only_the_newest_objects_when_asked(store: ObjectStore) -> None:
    for name in ("a", "b", "c"):
        store.put_json(f"m/{name}.json", {"name": name})
        next_second()  # S3 keeps LastModified to the second
    store.put_bytes("m/notes.txt", b"not json")
    assert sorted(item["name"] for item in store.iter_json("m/")) == ["a", "b", "c"]
    assert sorted(item["name"] for item in store.iter_json("m/", newest=2)) == ["b", "c"]
    assert [item["name"] for item in store.iter_json("m/", newest=1)] == ["c"]
    assert len(list(store.iter_json("m/", newest=5))) == 3
    with pytest.raises(ObjectNotFound, match=r"^no m/z\.json: write it first$"):
        store.get_json("m/z.json", missing="no m/z.json: write it first")


def test_missing_bucket_is_a_clear_error() -> None:
    with moto_server() as settings:
        store = ObjectStore.from_settings(settings.model_copy(update={"bucket": "no-such-bucket"}))
        with pytest.raises(BucketNotFound, match="create it or set RETRAIN_S3__BUCKET"):
            store.check_bucket()
        with pytest.raises(BucketNotFound):
            store.put_bytes("x", b"")


def test_unreachable_endpoint_is_a_clear_error() -> None:
    settings = S3Settings(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id=SecretStr("a"),
        secret_access_key=SecretStr("b"),
    )
    store = ObjectStore.from_settings(settings)
    with pytest.raises(StorageUnavailable, match="retrain local up"):
        store.check_bucket()


def test_stores_of_one_endpoint_share_a_client_and_a_forked_process_makes_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def settings(port: int, key: str = "k") -> S3Settings:
        return S3Settings(
            endpoint_url=f"http://127.0.0.1:{port}",
            bucket="bucket-a",
            access_key_id=SecretStr(key),
            secret_access_key=SecretStr("s"),
        )

    def client(s3: S3Settings) -> object:
        return ObjectStore.from_settings(s3)._client

    first = client(settings(9))
    assert client(settings(9)) is first
    assert client(settings(9).model_copy(update={"bucket": "bucket-b", "prefix": "p/"})) is first
    assert client(settings(10)) is not first
    assert client(settings(9, key="other")) is not first
    monkeypatch.setattr(object_store.os, "getpid", lambda: -1)  # as in a forked child
    assert client(settings(9)) is not first
