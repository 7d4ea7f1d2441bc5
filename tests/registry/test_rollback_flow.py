"""The `rollback` Prefect flow on a temporary Prefect server, against a moto server."""

from __future__ import annotations

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.rollback import rollback
from retrain.config.services import S3Settings
from retrain.registry.registry import Registry, RegistryEvent
from retrain.storage.layout import REGISTRY_LOG_PREFIX as LOG_PREFIX
from retrain.storage.object_store import ObjectStore
from tasks.registry import rollback_alias
from tests.registry.conftest import record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def seeded(s3: S3Settings, *model_ids: str) -> Registry:
    registry = Registry(ObjectStore.from_settings(s3))
    for model_id in model_ids:
        registry.set("production", record(model_id), actor="nightly", reason="promote")
    return registry


def latest_alias_change() -> str:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["alias-change"]))
        )
    newest = max(artifacts, key=lambda artifact: artifact.created or 0)
    return str(newest.data)


def test_rollback_flow_moves_the_alias_and_publishes_before_and_after(s3_env: S3Settings) -> None:
    registry = seeded(s3_env, "ft:a", "ft:b", "ft:c")

    result = rollback(reason="c regressed")

    assert result == {
        "alias": "production",
        "before": "ft:c",
        "after": "ft:b",
        "seq": 4,
        "action": "rollback",
    }
    assert registry.resolve("production").model_id == "ft:b"
    event = registry.history("production")[-1]
    assert (event.reason, event.actor.startswith("prefect:rollback/")) == ("c regressed", True)
    markdown = latest_alias_change()
    assert "| before | `ft:c` |" in markdown
    assert "| after | `ft:b` |" in markdown

    assert rollback(to_model="ft:c")["after"] == "ft:c"


def test_rollback_flow_fails_cleanly_for_an_unknown_model(s3_env: S3Settings) -> None:
    registry = seeded(s3_env, "ft:a", "ft:b")

    state = rollback(to_model="ft:missing", return_state=True)

    assert state.is_failed()
    with pytest.raises(Exception, match="model 'ft:missing' is not in the registry"):
        state.result()
    assert registry.resolve("production").model_id == "ft:b"


def test_a_retried_rollback_task_moves_the_alias_once(s3_env: S3Settings) -> None:
    registry = seeded(s3_env, "ft:a", "ft:b", "ft:c")

    @flow
    def rollback_twice() -> list[RegistryEvent]:
        return [
            rollback_alias("production", reason="r", idempotency_key="rollback:same-run") for _ in range(2)
        ]

    first, second = rollback_twice()

    assert first == second
    assert registry.resolve("production").model_id == "ft:b"
    assert len(list(ObjectStore.from_settings(s3_env).list(LOG_PREFIX))) == 4
