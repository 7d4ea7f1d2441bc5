"""One Prefect server for the infra tests (started only when a test asks for it)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness: None) -> str:
    """The session's Prefect test server (SQLite in a temporary directory), active in-process."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url
    return str(url)
