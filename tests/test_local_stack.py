"""`retrain local up | down | status` with real processes on free ports and a tmp data dir."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam
from typer.testing import CliRunner

from retrain.cli.local import app
from retrain.config.settings import Settings, get_settings, load_settings
from retrain.exceptions import ConfigError
from retrain.local import stack as local_stack
from retrain.local.synthetic import intents, make_examples
from retrain.storage.object_store import ObjectStore
from tests.s3_servers import free_port

pytestmark = pytest.mark.slow

BASE = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    s3_port, openai_port = free_port(), free_port()
    monkeypatch.setenv("RETRAIN_LOCAL__DATA_DIR", str(tmp_path / "stack"))
    monkeypatch.setenv("RETRAIN_LOCAL__S3_PORT", str(s3_port))
    monkeypatch.setenv("RETRAIN_LOCAL__OPENAI_PORT", str(openai_port))
    monkeypatch.setenv("RETRAIN_LOCAL__OPENAI_STEP_DELAY", "0.02")
    monkeypatch.setenv("RETRAIN_S3__ENDPOINT_URL", f"http://127.0.0.1:{s3_port}")
    monkeypatch.setenv("RETRAIN_PROVIDER__BASE_URL", f"http://127.0.0.1:{openai_port}/v1")
    get_settings.cache_clear()
    current = load_settings()
    try:
        yield current
    finally:
        local_stack.down(current)
        get_settings.cache_clear()


def _client(settings: Settings) -> OpenAI:
    return OpenAI(
        base_url=settings.provider.base_url, api_key="x", max_retries=0, _strict_response_validation=True
    )


def _wait(client: OpenAI, job_id: str, statuses: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (status := client.fine_tuning.jobs.retrieve(job_id).status) not in statuses:
        assert time.monotonic() < deadline, f"job {job_id} still {status}"
        time.sleep(0.05)
    return status


def _upload(client: OpenAI, n: int) -> str:
    content = "\n".join(json.dumps(e) for e in make_examples(n, seed=1)).encode()
    return client.files.create(file=("train.jsonl", content), purpose="fine-tune").id


def test_cli_up_is_idempotent_status_reports_and_down_stops(settings: Settings) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["up"])
    assert first.exit_code == 0, first.output
    assert f"export RETRAIN_PROVIDER__BASE_URL={settings.provider.base_url}" in first.output
    together = f"http://{settings.local.host}:{settings.local.openai_port}/together/v1"
    assert f"Together AI endpoint: {together}\n" in first.output  # on its own line
    assert httpx.get(f"{together.removesuffix('/v1')}/v1/fine-tunes", timeout=10).json() == {"data": []}
    assert "already running" in runner.invoke(app, ["up"]).output
    assert runner.invoke(app, ["status"]).exit_code == 0

    store = ObjectStore.from_settings(settings.s3)
    store.put_json("hello.json", {"ok": True})
    assert store.get_json("hello.json") == {"ok": True}
    assert (settings.local.data_dir / "run" / "openai.pid").is_file()

    assert runner.invoke(app, ["down"]).exit_code == 0
    stopped = runner.invoke(app, ["status"])
    assert stopped.exit_code == 1 and "stopped" in stopped.output
    assert not (settings.local.data_dir / "run" / "openai.pid").exists()


def test_a_port_taken_by_something_else_is_a_clear_error(settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.local.s3_port))
        squatter.listen()
        with pytest.raises(ConfigError, match=f"port {settings.local.s3_port} .* taken"):
            local_stack.up(settings)


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def test_jobs_and_models_survive_down_and_up(settings: Settings) -> None:
    local_stack.up(settings)
    client = _client(settings)
    finished = client.fine_tuning.jobs.create(model=BASE, training_file=_upload(client, 200), seed=1)
    assert _wait(client, finished.id, {"succeeded", "failed"}) == "succeeded"
    unfinished = client.fine_tuning.jobs.create(model=BASE, training_file=_upload(client, 600), seed=1)
    _wait(client, unfinished.id, {"running"})

    local_stack.down(settings)
    # Stopped means the ports are free again, so an `up` right after can bind them.
    ports = (settings.local.s3_port, settings.local.openai_port)
    assert not any(_accepts(settings.local.host, port) for port in ports)
    assert not local_stack.status(settings).running
    assert local_stack.up(settings).running

    client = _client(settings)
    kept = client.fine_tuning.jobs.retrieve(finished.id)
    assert kept.status == "succeeded" and kept.fine_tuned_model
    question: list[ChatCompletionMessageParam] = [{"role": "user", "content": "How do I reset my password?"}]
    reply = client.chat.completions.create(model=kept.fine_tuned_model, messages=question)
    assert reply.choices[0].message.content == intents()[0].answer
    assert _wait(client, unfinished.id, {"succeeded", "failed", "cancelled"}) == "succeeded"
    events = [e.message for e in client.fine_tuning.jobs.list_events(unfinished.id, limit=1000)]
    assert any(m.startswith("Server restarted; the job continues from step") for m in events)
    resumed = client.fine_tuning.jobs.retrieve(unfinished.id)
    assert resumed.fine_tuned_model in {m.id for m in client.models.list()}
