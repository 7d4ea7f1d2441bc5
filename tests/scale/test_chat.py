"""`retrain chat` and `retrain.evaluate.chat.ask`: a model trained on the local server, found by alias."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from retrain.cli.main import app as root
from retrain.config.settings import Settings, get_settings
from retrain.evaluate.chat import ask
from retrain.local.synthetic import intents, make_examples
from retrain.registry import resolver as resolver_module
from retrain.registry.records import ModelRecord
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore
from tests.s3_servers import moto_server

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, str]]:
    """S3 (moto server) and the local OpenAI server, with one fine-tuned model trained for real."""
    from local_openai import serve_in_thread

    monkeypatch.setattr(resolver_module, "_resolvers", {})
    with moto_server() as s3, serve_in_thread(tmp_path / "openai", step_delay=0.001) as api:
        monkeypatch.setenv("RETRAIN_S3__ENDPOINT_URL", str(s3.endpoint_url))
        monkeypatch.setenv("RETRAIN_S3__BUCKET", s3.bucket)
        monkeypatch.setenv("RETRAIN_PROVIDER__BASE_URL", api.base_url)
        get_settings.cache_clear()
        settings = get_settings()
        client = OpenAI(base_url=api.base_url, api_key="test", max_retries=0)
        body = b"".join(
            orjson.dumps(example) + b"\n" for example in make_examples(400, seed=1, intents=intents()[:10])
        )
        file_id = client.files.create(file=("train.jsonl", body), purpose="fine-tune").id
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=file_id)
        deadline = time.monotonic() + 120
        while job.status not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "succeeded" and job.fine_tuned_model
        yield settings, job.fine_tuned_model
        get_settings.cache_clear()


def test_ask_uses_the_model_the_alias_points_to(served: tuple[Settings, str]) -> None:
    settings, model_id = served
    store = ObjectStore.from_settings(settings.s3)
    Registry(store).set(
        "production",
        ModelRecord(model_id=model_id, provider="local", base_model="gpt-4o-mini-2024-07-18"),
        actor="test",
        reason="trained",
    )
    Registry(store).set(
        "staging",
        ModelRecord(model_id="gpt-4o-mini-2024-07-18", provider="local", base_model="gpt-4o-mini-2024-07-18"),
        actor="test",
        reason="base",
    )
    intent = intents()[0]
    question = make_examples(1, seed=5, intents=[intent])[0]["messages"][1]["content"]

    answer = ask(question)
    assert answer == intent.answer
    assert (answer.model, answer.provider) == (model_id, "local")
    assert ask(question, alias="staging") != intent.answer  # the base model never learned it

    result = CliRunner().invoke(root, ["chat", question])
    assert result.exit_code == 0, result.output
    assert intent.answer in result.stdout

    missing = CliRunner().invoke(root, ["chat", "--alias", "canary", question])
    assert missing.exit_code == 1
    assert "no alias 'canary' in the registry" in missing.output
