"""Registry fixtures: one ObjectStore per S3 backend (moto in-process, moto server, localbucket)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from retrain.registry_records import ModelRecord
from retrain.settings import S3Settings, get_settings
from retrain.storage import ObjectStore
from tests.s3_servers import moto_server


@pytest.fixture
def store(any_s3_store: ObjectStore) -> ObjectStore:
    return any_s3_store


def record(model_id: str, **fields: object) -> ModelRecord:
    return ModelRecord.model_validate(
        {"model_id": model_id, "provider": "local", "base_model": "base-1", **fields}
    )


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Settings]:
    """A moto server, and RETRAIN_S3__* pointing the settings at it."""
    with moto_server() as settings:
        assert settings.access_key_id and settings.secret_access_key
        env = {
            "RETRAIN_S3__ENDPOINT_URL": str(settings.endpoint_url),
            "RETRAIN_S3__BUCKET": settings.bucket,
            "RETRAIN_S3__ACCESS_KEY_ID": settings.access_key_id.get_secret_value(),
            "RETRAIN_S3__SECRET_ACCESS_KEY": settings.secret_access_key.get_secret_value(),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        yield settings
        get_settings.cache_clear()
