"""Fixtures for the local OpenAI-compatible server: a live server per test, an SDK client, the spec."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from local_openai import ServerHandle, serve_in_thread
from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    with serve_in_thread(tmp_path / "openai", step_delay=0.001) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="x", max_retries=0, _strict_response_validation=True)


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    path = Path(os.environ.get("RETRAIN_OPENAPI_SPEC", REPO_ROOT / "../shared/openai-openapi/openapi.yaml"))
    if not path.is_file():
        pytest.skip(f"OpenAI OpenAPI description not found at {path}; set RETRAIN_OPENAPI_SPEC to its path")
    import yaml

    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return loaded


def jsonl(examples: Sequence[object]) -> bytes:
    return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in examples).encode()


def upload(client: OpenAI, examples: Sequence[object], name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, jsonl(examples)), purpose="fine-tune").id


def wait_for(
    client: OpenAI, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 120
) -> FineTuningJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.status} after {timeout}s")
        time.sleep(0.05)
