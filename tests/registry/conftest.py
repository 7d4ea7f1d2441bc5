"""Registry fixtures: one ObjectStore per S3 backend (moto in-process, moto server, localbucket)."""

from __future__ import annotations

import pytest

from retrain.registry.records import ModelRecord
from retrain.storage.object_store import ObjectStore


@pytest.fixture
def store(any_s3_store: ObjectStore) -> ObjectStore:
    return any_s3_store


def record(model_id: str, **fields: object) -> ModelRecord:
    return ModelRecord.model_validate(
        {"model_id": model_id, "provider": "local", "base_model": "base-1", **fields}
    )
