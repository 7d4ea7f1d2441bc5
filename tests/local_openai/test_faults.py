"""Injected faults reach the SDK as the real service's errors, and the stats count what happened."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from local_openai import FaultConfig, FaultRule, ServerHandle, serve_in_thread
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from retrain.local.synthetic import make_examples

from .conftest import upload, wait_for

pytestmark = pytest.mark.slow

BASE = "gpt-4o-mini-2024-07-18"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


def _set_faults(server: ServerHandle, **config: object) -> None:
    response = httpx.post(f"{server.root_url}/admin/faults", json=config)
    response.raise_for_status()


def _stats(server: ServerHandle) -> dict[str, dict[str, int]]:
    body: dict[str, dict[str, int]] = httpx.get(f"{server.root_url}/admin/stats").json()
    return body


def test_rate_limit_surfaces_without_retries_and_passes_with_them(
    client: OpenAI, server: ServerHandle
) -> None:
    _set_faults(server, rules=[{"route": "chat", "kind": "429", "retry_after": 0, "count": 1}])
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model=BASE, messages=HELLO)
    assert err.value.response.headers["retry-after"] == "0"
    assert err.value.code == "rate_limit_exceeded"

    _set_faults(server, rules=[{"route": "chat", "kind": "429", "retry_after": 0, "count": 1}])
    retrying = client.with_options(max_retries=2)
    assert retrying.chat.completions.create(model=BASE, messages=HELLO).choices
    stats = _stats(server)
    assert stats["faults_injected"]["429"] == 2
    assert stats["chat_completions_by_model"][BASE] == 1


def test_server_errors_slowness_and_clearing(client: OpenAI, server: ServerHandle) -> None:
    _set_faults(
        server, rules=[{"route": "/models*", "kind": "500"}, {"route": "chat", "kind": "slow", "delay": 0.2}]
    )
    with pytest.raises(openai.InternalServerError):
        client.models.list()
    assert client.chat.completions.create(model=BASE, messages=HELLO).choices
    assert httpx.get(f"{server.root_url}/admin/faults").json()["rules"][0]["kind"] == "500"
    httpx.delete(f"{server.root_url}/admin/faults").raise_for_status()
    assert client.models.list().data
    assert _stats(server)["faults_injected"] == {"500": 1, "slow": 1}


def test_next_job_fail_ends_failed_with_an_error(client: OpenAI, server: ServerHandle) -> None:
    training = upload(client, make_examples(100, seed=1))
    _set_faults(server, next_job="fail")
    failed = wait_for(client, client.fine_tuning.jobs.create(model=BASE, training_file=training).id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "server_error" and "injected" in failed.error.message
    assert failed.fine_tuned_model is None

    after = wait_for(client, client.fine_tuning.jobs.create(model=BASE, training_file=training).id)
    assert after.status == "succeeded"


def test_next_job_hang_stays_running_until_cancelled(client: OpenAI, server: ServerHandle) -> None:
    training = upload(client, make_examples(100, seed=1))
    _set_faults(server, next_job="hang")
    hung = client.fine_tuning.jobs.create(model=BASE, training_file=training)
    wait_for(client, hung.id, {"running"})
    healthy = wait_for(client, client.fine_tuning.jobs.create(model=BASE, training_file=training).id)
    assert healthy.status == "succeeded"
    assert client.fine_tuning.jobs.retrieve(hung.id).status == "running"
    assert client.fine_tuning.jobs.cancel(hung.id).status == "cancelled"


def test_faults_configured_at_start_up(tmp_path: Path) -> None:
    config = FaultConfig(rules=[FaultRule(route="files", kind="429", retry_after=0)])
    with serve_in_thread(tmp_path, faults=config) as server:
        sdk = OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            sdk.files.list()
        assert sdk.models.list().data


def test_with_an_api_key_set_only_that_key_is_served_as_bearer_or_azure_header(tmp_path: Path) -> None:
    key = "sk-local-guarded-5b8e"
    with serve_in_thread(tmp_path / "guarded", api_key=key) as guarded:
        assert OpenAI(base_url=guarded.base_url, api_key=key, max_retries=0).models.list().data
        with pytest.raises(openai.AuthenticationError) as wrong:
            OpenAI(base_url=guarded.base_url, api_key="sk-other", max_retries=0).models.list()
        assert wrong.value.code == "invalid_api_key"
        azure = openai.AzureOpenAI(
            azure_endpoint=guarded.root_url, api_key=key, api_version="2025-04-01-preview", max_retries=0
        )
        assert azure.models.list().data  # Azure's api-key header
        assert httpx.get(f"{guarded.root_url}/admin/stats").json()["routes"]["GET /models (401)"] == 1
