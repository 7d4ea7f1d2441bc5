"""The serving-side resolver: answers from its cache for the TTL, then from S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrain.config.settings import load_settings
from retrain.exceptions import StorageUnavailable, UnknownAlias
from retrain.registry import resolver as resolver_module
from retrain.registry.registry import Registry
from retrain.registry.resolver import CachedResolver, resolve_model
from retrain.storage.object_store import ObjectStore
from tests.registry.conftest import record
from tests.s3_servers import localbucket_server, moto_server


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cached_answer_until_the_ttl_expires(store: ObjectStore) -> None:
    Registry(store).set("production", record("ft:a"), actor="a", reason="r")
    clock = FakeClock()
    resolver = CachedResolver(Registry(store), ttl_seconds=30, clock=clock)
    assert resolver.resolve("production").model_id == "ft:a"

    Registry(store).set("production", record("ft:b"), actor="b", reason="r")
    clock.now += 29.9
    assert resolver.resolve("production").model_id == "ft:a"
    clock.now += 0.2
    assert resolver.resolve("production").model_id == "ft:b"

    Registry(store).set("production", record("ft:c"), actor="c", reason="r")
    resolver.invalidate("production")
    assert resolver.resolve("production").model_id == "ft:c"


def test_unknown_alias_is_not_cached(store: ObjectStore) -> None:
    resolver = CachedResolver(Registry(store), ttl_seconds=3600, clock=FakeClock())
    with pytest.raises(UnknownAlias, match="known aliases: none yet"):
        resolver.resolve("production")
    Registry(store).set("production", record("ft:a"), actor="a", reason="r")
    assert resolver.resolve("production").model_id == "ft:a"


@pytest.mark.slow
def test_serves_the_last_answer_while_s3_is_down(tmp_path: Path) -> None:
    clock = FakeClock()
    with localbucket_server(tmp_path / "s3") as settings:
        store = ObjectStore.from_settings(settings)
        Registry(store).set("production", record("ft:a"), actor="a", reason="r")
        resolver = CachedResolver(Registry(store), ttl_seconds=10, clock=clock)
        cold = CachedResolver(Registry(store), ttl_seconds=10, clock=clock)
        assert resolver.resolve("production").model_id == "ft:a"
    clock.now += 60
    assert resolver.resolve("production").model_id == "ft:a"
    with pytest.raises(StorageUnavailable):
        cold.resolve("production")


@pytest.mark.slow
def test_resolve_model_uses_one_cached_resolver_per_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolver_module, "_resolvers", {})
    with moto_server() as s3:
        settings = load_settings(s3=s3.model_dump())
        Registry(ObjectStore.from_settings(s3)).set("production", record("ft:a"), actor="a", reason="r")
        Registry(ObjectStore.from_settings(s3)).set("canary", record("ft:b"), actor="a", reason="r")
        assert resolve_model(settings=settings) == "ft:a"
        assert resolve_model("canary", settings) == "ft:b"
        Registry(ObjectStore.from_settings(s3)).set("production", record("ft:c"), actor="a", reason="r")
        assert resolve_model(settings=settings) == "ft:a"
        assert len(resolver_module._resolvers) == 1
