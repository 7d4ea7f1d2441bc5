"""The real nightly flow: on an azure-configured provider, and refused by the budget before any upload."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from openai import OpenAI

from flows.nightly import nightly_retrain
from retrain.config.settings import get_settings
from retrain.exceptions import ConfigError
from retrain.providers.azure_deployments import AzureDeployments, deployment_name
from retrain.registry.registry import Registry
from retrain.storage.layout import ledger_key
from tests.azure import azure_env, local_azure
from tests.pipeline.conftest import Stack
from tests.pipeline.test_nightly_flow import land

pytestmark = pytest.mark.slow

AZURE_KEY = "sk-azure-test-7f3c9a1e5b2d4f60"


def _all_objects(stack: Stack) -> bytes:
    return b"".join(stack.store.get_bytes(info.key) for info in stack.store.list(""))


def _on_azure(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "RETRAIN_PROVIDER__KIND": "azure",
        "RETRAIN_PROVIDER__NAME": "azure-local",
        "RETRAIN_PROVIDER__AZURE_ENDPOINT": stack.api_root,
        "RETRAIN_PROVIDER__API_KEY": AZURE_KEY,
        **azure_env(stack.api_root),
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def test_the_nightly_flow_on_azure_deploys_the_candidate_evaluates_through_it_and_deletes_it_if_rejected(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _on_azure(stack, monkeypatch)
    assert get_settings().provider.kind == "azure"
    deployments = AzureDeployments(local_azure(stack.api_root))

    land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1)
    state = nightly_retrain(night=date(2026, 11, 1), return_state=True)
    assert state.is_completed() and "promoted" in (state.message or ""), state.message

    production = Registry(stack.store).get("production")
    assert production is not None and production.provider == "azure-local"
    assert production.deployment == deployment_name(production.model_id)
    # Production's deployment was moved to the production SKU; the base model it was compared with
    # (never production itself) had its deployment deleted.
    ours = {d.model_id: d.sku for d in deployments.ours()}
    assert ours == {production.model_id: "Standard"}, ours
    routes = stack.admin("GET", "/admin/stats").json()["routes"]
    # Both models answered through Azure's deployment paths, none through /chat/completions.
    assert routes.get("POST /deployments/{deployment}/chat/completions", 0) >= 2 * 120
    assert routes.get("POST /chat/completions", 0) == 0
    assert routes.get("POST /fine_tuning/jobs", 0) == 1
    assert AZURE_KEY.encode() not in _all_objects(stack)

    # A candidate the gate rejects (the floor is out of reach) has its deployment deleted.
    monkeypatch.setenv("RETRAIN_EVALUATION__FLOOR", "1.0")
    get_settings.cache_clear()
    land(stack, "incoming/2026-11-02/a.jsonl", 300, seed=2)
    rejected = nightly_retrain(night=date(2026, 11, 2), return_state=True)
    assert rejected.is_completed() and rejected.name == "Rejected", rejected.message
    candidate = Registry(stack.store).get("candidate")
    assert candidate is not None and candidate.deployment == deployment_name(candidate.model_id)
    assert candidate.model_id not in {d.model_id for d in deployments.ours()}
    assert {d.model_id for d in deployments.ours()} == set(ours)


def test_evaluating_a_model_that_was_never_deployed_fails_on_azure(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old shortcut, the model id sent as the deployment name, fails as it would on real Azure."""
    _on_azure(stack, monkeypatch)
    land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1)
    monkeypatch.setattr("tasks.serving.deployed", lambda settings, record, production=False: record)
    state = nightly_retrain(night=date(2026, 11, 1), return_state=True)
    assert state.is_failed()
    assert "is not served by provider 'azure-local'" in (state.message or ""), state.message
    assert "only once deployed" in (state.message or "")
    assert Registry(stack.store).get("production") is None


def test_moving_to_another_provider_compares_against_production_where_it_is_served(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1)
    assert "promoted" in (nightly_retrain(night=date(2026, 11, 1), return_state=True).message or "")
    first = Registry(stack.store).get("production")
    assert first is not None and first.provider == "local"

    # Training moves to another provider (Azure's API here, on the same local server).
    _on_azure(stack, monkeypatch)
    land(stack, "incoming/2026-11-02/a.jsonl", 2000, seed=2)
    routes = stack.admin("GET", "/admin/stats").json()["routes"]

    # Production still lives on 'local', which is no longer configured: refused before paying.
    refused = nightly_retrain(night=date(2026, 11, 2), return_state=True)
    assert refused.is_failed()
    with pytest.raises(ConfigError, match="RETRAIN_PROVIDERS__LOCAL__KIND"):
        refused.result()
    after = stack.admin("GET", "/admin/stats").json()["routes"]
    for route in ("POST /files", "POST /uploads", "POST /fine_tuning/jobs"):
        assert after.get(route, 0) == routes.get(route, 0), route

    monkeypatch.setenv("RETRAIN_PROVIDERS__LOCAL__BASE_URL", str(stack.settings.provider.base_url))
    get_settings.cache_clear()
    for cached in stack.store.list("state/eval-cache/"):  # so production is asked again, not read back
        stack.store.delete(cached.key)
    state = nightly_retrain(night=date(2026, 11, 2), return_state=True)
    assert state.is_completed() and "promoted" in (state.message or ""), state.message
    second = Registry(stack.store).get("production")
    assert second is not None and second.provider == "azure-local" and second.model_id != first.model_id
    done = stack.admin("GET", "/admin/stats").json()["routes"]
    # The candidate answered through Azure's paths, production through the compatible API.
    azure = "POST /deployments/{deployment}/chat/completions"
    assert done.get(azure, 0) - after.get(azure, 0) >= 120
    assert done.get("POST /chat/completions", 0) - after.get("POST /chat/completions", 0) >= 120


def test_a_job_over_budget_is_refused_before_any_upload(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = OpenAI(base_url=stack.settings.provider.base_url, api_key="x", max_retries=0)
    monkeypatch.setenv("RETRAIN_TRAINING__MAX_TRAINING_COST_USD", "0.0001")
    get_settings.cache_clear()
    land(stack, "incoming/2026-11-01/a.jsonl", 300, seed=1)

    refused = nightly_retrain(night=date(2026, 11, 1), return_state=True)
    assert refused.is_failed()
    message = refused.message or ""
    assert "BudgetExceeded" in message and "max_training_cost_usd" in message and "\n" not in message
    assert api.files.list().data == [] and api.fine_tuning.jobs.list().data == []
    for folder in ("state/uploads/", "state/jobs/", "state/budget/", "state/decisions/"):
        assert list(stack.store.list(folder)) == [], folder
    assert Registry(stack.store).get("production") is None

    # Within budget the same version trains, its cost is recorded, and our files are cleaned up.
    monkeypatch.setenv("RETRAIN_TRAINING__MAX_TRAINING_COST_USD", "100")
    monkeypatch.setenv("RETRAIN_TRAINING__MONTHLY_BUDGET_USD", "100")
    monkeypatch.setenv("RETRAIN_TRAINING__DELETE_FILES_AFTER_JOB", "true")
    get_settings.cache_clear()
    trained = nightly_retrain(night=date(2026, 11, 1), return_state=True)
    assert trained.is_completed() and "promoted" in (trained.message or ""), trained.message
    [job] = api.fine_tuning.jobs.list().data
    ledger = stack.store.get_json(ledger_key(f"{datetime.fromtimestamp(job.created_at, UTC):%Y-%m}"))
    entry = ledger["jobs"][job.id]
    assert entry["status"] == "succeeded" and entry["trained_tokens"] == job.trained_tokens > 0
    assert entry["usd"] == pytest.approx(job.trained_tokens * 3.0 / 1_000_000, rel=1e-3)
    assert entry["estimated_usd"] > 0
    assert list(stack.store.list("state/uploads/")) == []
    remaining = {f.id for f in api.files.list().data}
    assert job.training_file not in remaining and job.validation_file not in remaining
