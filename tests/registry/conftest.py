"""Registry fixtures: one ObjectStore per S3 backend (moto in-process, moto server, localbucket)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from retrain.registry_records import ModelRecord
from retrain.settings import S3Settings, get_settings
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


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (it takes 20-30 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


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
