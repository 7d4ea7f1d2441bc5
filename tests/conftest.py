"""Session-wide test setup: an isolated Prefect home with telemetry off, and shared fixtures."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="retrain-test-prefect-"))
os.environ.setdefault("PREFECT_HOME", str(_PREFECT_HOME))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ.pop("PREFECT_API_URL", None)
for _name in [name for name in os.environ if name.startswith("RETRAIN_") and name != "RETRAIN_OPENAPI_SPEC"]:
    del os.environ[_name]

import boto3  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from retrain.config.services import S3Settings  # noqa: E402
from retrain.config.settings import get_settings  # noqa: E402
from retrain.storage.object_store import ObjectStore  # noqa: E402
from tests.s3_servers import localbucket_server, moto_server  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole test session (it takes 20-30 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def moto_store() -> Iterator[ObjectStore]:
    """A fresh bucket in moto's in-process S3 (fast; for logic that only needs some S3)."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="test-bucket")
        yield ObjectStore(client, "test-bucket")


@pytest.fixture
def localbucket_store(tmp_path: Path) -> Iterator[ObjectStore]:
    """localbucket only: its create-only writes are atomic (moto checks, then writes)."""
    with localbucket_server(tmp_path / "s3") as settings:
        yield ObjectStore.from_settings(settings)


@pytest.fixture(
    params=[
        "moto-inprocess",
        pytest.param("moto-server", marks=pytest.mark.slow),
        pytest.param("localbucket", marks=pytest.mark.slow),
    ]
)
def any_s3_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """The same bucket behaviour on every S3 we run on: moto in-process, moto's server, localbucket."""
    if request.param == "moto-inprocess":
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket="unit-bucket")
            yield ObjectStore(client, "unit-bucket", prefix="team/")
        return
    server = moto_server() if request.param == "moto-server" else localbucket_server(tmp_path / "s3")
    with server as settings:
        yield ObjectStore.from_settings(settings.model_copy(update={"prefix": "team/"}))


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
