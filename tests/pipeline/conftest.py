"""The pipeline under test: moto's S3 server, the local OpenAI-compatible server, and Prefect."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from retrain.config.settings import Settings, get_settings
from retrain.evaluate.eval_sets import put_eval_set
from retrain.local.synthetic import make_eval_set
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore
from tests.s3_servers import moto_server


@dataclass
class Stack:
    settings: Settings
    store: ObjectStore
    api_root: str

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = httpx.request(method, f"{self.api_root}{path}", timeout=30, **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        return response


def run(night: str) -> Any:
    """The real nightly flow, in this process, returning its final state."""
    from flows.nightly import nightly_retrain

    return nightly_retrain(night=date.fromisoformat(night), return_state=True)


def client(stack: Stack) -> OpenAI:
    return OpenAI(base_url=stack.settings.provider.base_url, api_key="test", max_retries=0)


def production_history(stack: Stack) -> list[tuple[str, str]]:
    registry = Registry(stack.store)
    if registry.get("production") is None:
        return []
    return [(event.action, event.model.model_id) for event in registry.history("production")]


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> Iterator[Stack]:
    from local_openai import serve_in_thread

    with moto_server() as s3, serve_in_thread(tmp_path / "openai", step_delay=0.002) as api:
        env = {
            "RETRAIN_S3__ENDPOINT_URL": s3.endpoint_url,
            "RETRAIN_S3__BUCKET": s3.bucket,
            "RETRAIN_S3__ACCESS_KEY_ID": "testing",
            "RETRAIN_S3__SECRET_ACCESS_KEY": "testing",
            "RETRAIN_PROVIDER__BASE_URL": api.base_url,
            "RETRAIN_TRAINING__POLL_INTERVAL_SECONDS": "0.1",
            "RETRAIN_TRAINING__MAX_POLL_INTERVAL_SECONDS": "0.2",
            "RETRAIN_EVALUATION__CONCURRENCY": "8",
            "RETRAIN_LOCAL__DATA_DIR": str(tmp_path / "data"),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()
        settings = get_settings()
        store = ObjectStore.from_settings(settings.s3)
        put_eval_set(store, "main", make_eval_set(120, seed=99))
        yield Stack(settings, store, api.root_url)
        get_settings.cache_clear()
