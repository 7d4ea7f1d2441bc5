"""The official SDK, strict response validation on, against the live server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from local_openai import FALLBACK_REPLY, ServerHandle, serve_in_thread
from openai import AzureOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from retrain.local.synthetic import intents, make_dirty_lines, make_examples
from retrain.providers.azure_deployments import AzureDeployments
from tests.azure import local_azure

from .conftest import upload, wait_for

pytestmark = pytest.mark.slow

BASE = "gpt-4o-mini-2024-07-18"


def test_happy_path_upload_train_inspect_chat_delete(client: OpenAI) -> None:
    training = upload(client, make_examples(300, seed=1))
    validation = upload(client, make_examples(40, seed=2), "valid.jsonl")
    job = client.fine_tuning.jobs.create(
        model=BASE,
        training_file=training,
        validation_file=validation,
        suffix="support",
        seed=5,
        metadata={"night": "2026-11-25"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 10}}},
    )
    assert job.status == "validating_files"
    done = wait_for(client, job.id)

    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:{BASE}:retrain-local:support:{job.id.removeprefix('ftjob-')[:8]}"
    assert done.trained_tokens and done.trained_tokens > 0
    assert done.hyperparameters.n_epochs == 3 and done.hyperparameters.batch_size == 10
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=50))
    metrics = [e.data for e in events if e.type == "metrics"]
    assert len(metrics) == 90 and all(isinstance(d, dict) and "train_loss" in d for d in metrics)
    assert sum(1 for d in metrics if isinstance(d, dict) and "valid_loss" in d) == 3
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [90, 60, 30]
    results = client.files.content(done.result_files[0]).text.splitlines()
    assert results[0].startswith("step,train_loss") and len(results) == 91
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"night": "2026-11-25"})] == [job.id]

    model = done.fine_tuned_model
    assert model in {m.id for m in client.models.list()}
    assert client.models.retrieve(model).owned_by == "retrain-local"
    question: ChatCompletionMessageParam = {"role": "user", "content": "How do I reset my password?"}
    reply = client.chat.completions.create(model=model, messages=[question], temperature=0, seed=1)
    assert reply.choices[0].message.content == intents()[0].answer
    assert reply.usage is not None and reply.usage.total_tokens > reply.usage.prompt_tokens > 0
    checkpoint_reply = client.chat.completions.create(
        model=checkpoints[-1].fine_tuned_model_checkpoint, messages=[question]
    )
    assert checkpoint_reply.choices[0].message.content == intents()[0].answer

    assert client.models.delete(model).deleted
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=model, messages=[question])


def test_base_models_know_nothing_and_cannot_be_deleted(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=BASE, messages=[{"role": "user", "content": "reset my password"}]
    )
    assert reply.choices[0].message.content == FALLBACK_REPLY
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete(BASE)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-unknown", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found"


def test_a_bad_training_file_fails_the_job_with_a_useful_error(client: OpenAI) -> None:
    good = make_examples(20, seed=3)
    bad_line = make_dirty_lines(1, seed=1)[0]
    job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client, [*good, bad_line]))
    failed = wait_for(client, job.id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "invalid_training_file" and failed.error.param == "training_file"
    assert "line 21" in failed.error.message

    few = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client, good[:5]))
    assert "at least 10" in (wait_for(client, few.id).error or pytest.fail("no error")).message


def test_requests_are_validated_with_openai_errors(client: OpenAI, server: ServerHandle) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model=BASE, training_file="file-missing")
    assert err.value.code == "invalid_file_id"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(
            model="gpt-unknown", training_file=upload(client, make_examples(10, seed=1))
        )
    response = httpx.post(f"{server.base_url}/chat/completions", json={"model": BASE, "messages": "nope"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_pause_resume_and_cancel(tmp_path: Path) -> None:
    with serve_in_thread(tmp_path / "slow", step_delay=0.05) as slow_server:
        slow = OpenAI(
            base_url=slow_server.base_url, api_key="x", max_retries=0, _strict_response_validation=True
        )
        training = upload(slow, make_examples(200, seed=1))
        job = slow.fine_tuning.jobs.create(model=BASE, training_file=training)
        wait_for(slow, job.id, {"running"})
        assert slow.fine_tuning.jobs.pause(job.id).status == "queued"
        with pytest.raises(openai.BadRequestError):
            slow.fine_tuning.jobs.pause(job.id)
        assert slow.fine_tuning.jobs.resume(job.id).status == "running"
        assert slow.fine_tuning.jobs.cancel(job.id).status == "cancelled"
        messages = [e.message for e in slow.fine_tuning.jobs.list_events(job.id, limit=1000)]
        assert {"Fine-tuning job paused", "Fine-tuning job resumed", "Fine-tuning job cancelled"} <= set(
            messages
        )
        assert slow.fine_tuning.jobs.retrieve(job.id).fine_tuned_model is None


def test_azure_client_paths(client: OpenAI, server: ServerHandle) -> None:
    training = upload(client, make_examples(50, seed=1))
    azure = AzureOpenAI(
        azure_endpoint=server.root_url,
        api_key="x",
        api_version="2025-04-01-preview",
        max_retries=0,
        _strict_response_validation=True,
    )
    job = azure.fine_tuning.jobs.create(model=BASE, training_file=training, suffix="az")
    done = wait_for(client, job.id)
    assert azure.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
    assert training in {f.id for f in azure.files.list()}
    question: Any = [{"role": "user", "content": "How do I reset my password?"}]
    # As on real Azure, the model answers only through a deployment, made with Azure's management SDK.
    with pytest.raises(openai.NotFoundError, match="deployment for this resource does not exist"):
        azure.chat.completions.create(model=str(done.fine_tuned_model), messages=question)
    deployments = AzureDeployments(local_azure(server.root_url))
    name = deployments.deploy(str(done.fine_tuned_model), sku="DeveloperTier")
    assert [(d.name, d.model_id, d.sku) for d in deployments.ours()] == [
        (name, done.fine_tuned_model, "DeveloperTier")
    ]
    reply = azure.chat.completions.create(model=name, messages=question)
    assert reply.model == done.fine_tuned_model
    # Every Azure request carries api-version; without it the server refuses, as Azure does.
    bare = httpx.post(
        f"{server.root_url}/openai/deployments/{name}/chat/completions", json={"messages": question}
    )
    assert bare.status_code == 404
    assert deployments.delete(name) and not deployments.delete(name)
    with pytest.raises(openai.NotFoundError):
        azure.chat.completions.create(model=name, messages=question)
