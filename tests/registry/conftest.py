"""Registry fixtures: one ObjectStore per S3 backend (moto in-process, moto server, localbucket)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from retrain.registry_records import ModelRecord
from retrain.storage import ObjectStore
from tests.s3_servers import localbucket_server, moto_server


@pytest.fixture(
    params=[
        "moto-inprocess",
        pytest.param("moto-server", marks=pytest.mark.slow),
        pytest.param("localbucket", marks=pytest.mark.slow),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "moto-inprocess":
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket="registry-bucket")
            yield ObjectStore(client, "registry-bucket", prefix="team/")
        return
    server = moto_server() if request.param == "moto-server" else localbucket_server(tmp_path / "s3")
    with server as settings:
        yield ObjectStore.from_settings(settings.model_copy(update={"prefix": "team/"}))


@pytest.fixture
def localbucket_store(tmp_path: Path) -> Iterator[ObjectStore]:
    """localbucket only: its create-only writes are atomic (moto checks, then writes)."""
    with localbucket_server(tmp_path / "s3") as settings:
        yield ObjectStore.from_settings(settings)


def record(model_id: str, **fields: object) -> ModelRecord:
    return ModelRecord.model_validate(
        {"model_id": model_id, "provider": "local", "base_model": "base-1", **fields}
    )
