"""The local Together endpoint, driven by the real ``together`` SDK in strict response-validation mode.

A whole lifecycle (upload, create, retrieve, list, events, metrics, checkpoints, cancel, chat with
the trained model through the ``openai`` SDK) parses without a validation error, and the job passes
through Together's own states.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from together import Together

from tests.finetune.conftest import chat_file

BASE = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    from local_openai import serve_in_thread

    with serve_in_thread(tmp_path / "openai", step_delay=0.01) as handle:
        yield handle


def _client(server: Any) -> Together:
    return Together(
        api_key="x", base_url=f"{server.root_url}/together", max_retries=0, _strict_response_validation=True
    )


def _upload(client: Together, tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return client.files.upload(path, purpose="fine-tune", check=True).id


def _wait(client: Together, job_id: str, seen: set[str], until: set[str]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = str(client.fine_tuning.retrieve(job_id).status)
        seen.add(status)
        if status in until:
            return status
        time.sleep(0.005)
    raise AssertionError(f"job {job_id} did not reach {until}; saw {seen}")


def test_a_whole_lifecycle_parses_strictly(server: Any, tmp_path: Path) -> None:
    client = _client(server)
    train = _upload(client, tmp_path, "train.jsonl", chat_file(40, seed=1))
    valid = _upload(client, tmp_path, "valid.jsonl", chat_file(12, seed=2))
    assert _upload(client, tmp_path, "again.jsonl", chat_file(40, seed=1)) == train  # same checksum: 409
    assert client.files.retrieve(train).processing_status == "COMPLETED"
    assert train in {f.id for f in client.files.list().data}

    job = client.fine_tuning.create(
        training_file=train,
        validation_file=valid,
        model=BASE,
        n_epochs=2,
        lora=True,
        lora_r=16,
        lora_alpha=32,
        learning_rate=1e-4,
        suffix="retrain-abc123",
        random_seed=7,
    )
    seen: set[str] = set()
    assert _wait(client, job.id, seen, {"completed"}) == "completed"
    assert {"running", "compressing", "uploading", "completed"} <= seen | {"compressing", "uploading"}
    done = client.fine_tuning.retrieve(job.id)
    assert done.x_model_output_name == job.output_name and job.output_name.endswith(job.id[-6:])
    assert "retrain-abc123" in done.x_model_output_name
    assert done.training_type is not None and done.training_type.type == "Lora"
    assert job.id in {j.id for j in client.fine_tuning.list().data}

    types = [e.type for e in client.fine_tuning.list_events(job.id).data]
    for expected in ("job_pending", "job_start", "model_compressing", "model_uploading", "job_complete"):
        assert expected in types
    metrics = client.fine_tuning.list_metrics(job.id).metrics or []
    assert metrics and metrics[0]["global_step"] == 1.0 and "train_loss" in metrics[0]
    assert client.fine_tuning.list_checkpoints(job.id).data

    chat = OpenAI(base_url=f"{server.root_url}/together/v1", api_key="x", _strict_response_validation=True)
    answer = chat.chat.completions.create(
        model=done.x_model_output_name, messages=[{"role": "user", "content": "How do I reset my password?"}]
    )
    assert answer.choices[0].message.content


def test_cancel_and_failures(server: Any, tmp_path: Path) -> None:
    client = _client(server)
    train = _upload(client, tmp_path, "train.jsonl", chat_file(40, seed=3))
    httpx.post(f"{server.root_url}/admin/faults", json={"next_job": "hang"}, timeout=10).raise_for_status()
    job = client.fine_tuning.create(training_file=train, model=BASE, lora=True)
    _wait(client, job.id, set(), {"running"})
    cancelled = client.fine_tuning.cancel(job.id)
    assert cancelled.status == "cancel_requested"
    assert client.fine_tuning.retrieve(job.id).status == "cancelled"
    assert "job_stopped" in {e.type for e in client.fine_tuning.list_events(job.id).data}

    httpx.post(f"{server.root_url}/admin/faults", json={"next_job": "fail"}, timeout=10).raise_for_status()
    failing = client.fine_tuning.create(training_file=train, model=BASE, lora=True)
    assert _wait(client, failing.id, set(), {"error", "completed"}) == "error"
    errors = [e for e in client.fine_tuning.list_events(failing.id).data if e.type == "job_error"]
    assert errors and "injected fault" in errors[0].message


def test_faults_and_refusals_reach_the_sdk(server: Any, tmp_path: Path) -> None:
    import together

    client = _client(server)
    train = _upload(client, tmp_path, "train.jsonl", chat_file(20, seed=4))
    with pytest.raises(together.BadRequestError, match="not supported for fine-tuning"):
        client.fine_tuning.create(training_file=train, model="no/such-model", lora=True)
    httpx.post(
        f"{server.root_url}/admin/faults",
        json={"rules": [{"route": "jobs", "kind": "429", "count": 1}]},
        timeout=10,
    ).raise_for_status()
    with pytest.raises(together.RateLimitError):
        client.fine_tuning.list()
    assert client.fine_tuning.list().data == []
    with pytest.raises(together.NotFoundError):
        client.fine_tuning.retrieve("ft-nope")
