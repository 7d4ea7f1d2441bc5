"""Session-wide test setup: an isolated Prefect home with telemetry off, and shared fixtures.

Under pytest-xdist (`make test` runs a worker per CPU) each worker is a session of its own: its own
Prefect home, its own Prefect test server on a free port, its own tmp_path root; every other
server the tests start (moto, localbucket, the local OpenAI server, the local stack) takes a
free port too. See `pytest_collection_modifyitems` below for how tests are shared out.
"""

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
if os.environ.get("PYTEST_XDIST_WORKER"):
    # The controller's readline sets LINES and COLUMNS (80x24 without a terminal) before it starts
    # the workers, and a rich Console made at import time would keep that width for good, where
    # `COLUMNS=200` set by a test is read at print time otherwise. A worker starts as pytest does.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

import boto3  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from retrain.config.services import S3Settings  # noqa: E402
from retrain.config.settings import get_settings  # noqa: E402
from retrain.storage.object_store import ObjectStore  # noqa: E402
from tests.s3_servers import localbucket_server, moto_server  # noqa: E402

# The modules that start first when pytest-xdist shares them out (`--dist loadfile`: a module's
# tests run on one worker, in file order, so its module-scoped fixtures are set up once), longest
# first, so that no worker is left with one of them at the end while the other has nothing to do.
# Then the other modules with slow tests, then the rest. Only when each test starts changes.
LONGEST_FIRST = (
    "tests/ui/test_prefect_ui.py",  # `retrain local up --with-prefect` and runs through its worker
    "tests/scale/test_soak.py",
    "tests/lora/test_lora_night.py",  # trains SmolLM2-135M through the nightly flow
    "tests/faults/test_crash.py",
    "tests/pipeline/test_nightly_flow.py",
    "tests/faults/test_fault_matrix.py",
    "tests/finetune/test_flow.py",
    "tests/pipeline/test_run_cli.py",
    "tests/validation/test_batch_features.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the long modules first (every worker collects the same items and sorts them
    the same way; a stable sort keeps each module's tests together and in file order)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow_modules = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        if module in LONGEST_FIRST:
            return LONGEST_FIRST.index(module)
        return len(LONGEST_FIRST) + (0 if module in slow_modules else 1)

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _settings_read_afresh() -> None:
    """Every test reads the settings from its own environment: none sees another's cached ones
    (tests that set RETRAIN_* clear the cache themselves; under xdist any test can follow any)."""
    get_settings.cache_clear()


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
