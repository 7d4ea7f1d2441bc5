"""The CPU inference server: vLLM's endpoints over real HTTP, through the openai SDK with strict
response validation and through retrain's own adapter client, on the tiny random model."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from local_inference.engine import Engine
from local_inference.server import serve_in_thread
from local_openai.server import ServerHandle
from openai import NotFoundError, OpenAI

from retrain.config.services import S3Settings
from retrain.exceptions import ProviderError, ProviderUnavailable
from retrain.storage.object_store import ObjectStore
from retrain.train.lora.base_models import load_base_model, locate_base_model
from retrain.train.lora.serving import load_adapter, unload_adapter

QUESTION = [{"role": "user", "content": "What is the capital of Zorbia?"}]


def _engine(tiny_model: Path) -> Engine:
    model, tokenizer = load_base_model(locate_base_model(str(tiny_model)))
    return Engine("tiny", model.eval(), tokenizer, str(tiny_model), max_model_len=256)


@pytest.fixture(scope="module")
def adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with non-zero random weights, so it answers differently from the base model."""
    from peft import LoraConfig, get_peft_model

    model, _ = load_base_model(locate_base_model(str(tiny_model)))
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    folder = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, config).save_pretrained(folder)
    return folder


@pytest.fixture
def server(tiny_model: Path, tmp_path: Path) -> Iterator[ServerHandle]:
    with serve_in_thread(_engine(tiny_model), tmp_path / "cache", window=0.05) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="x", max_retries=0, _strict_response_validation=True)


def _answer(client: OpenAI, model: str, max_tokens: int = 12) -> str:
    completion = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=max_tokens)  # type: ignore[arg-type]
    return completion.choices[0].message.content or ""


def test_the_base_model_is_listed_and_answers_in_openai_shape(client: OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["tiny"]
    completion = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=7)  # type: ignore[arg-type]
    choice = completion.choices[0]
    assert completion.object == "chat.completion" and completion.model == "tiny"
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 7
    assert completion.usage.prompt_tokens > 0
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert _answer(client, "tiny", 7) == choice.message.content  # greedy by default: the same answer


def test_a_stop_string_cuts_the_answer(client: OpenAI) -> None:
    full = _answer(client, "tiny", 20)
    assert len(full) > 2
    stop = full[1:3]
    cut = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=20, stop=[stop])  # type: ignore[arg-type]
    assert cut.choices[0].message.content == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_an_unknown_model_is_openais_404(client: OpenAI) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        _answer(client, "no-such-model")


def test_an_adapter_loads_answers_by_its_name_and_unloads(
    server: ServerHandle, client: OpenAI, adapter: Path
) -> None:
    base_answer = _answer(client, "tiny")
    response = httpx.post(
        f"{server.base_url}/load_lora_adapter", json={"lora_name": "ft:night-1", "lora_path": str(adapter)}
    )
    assert (
        response.status_code == 200
        and response.text == "Success: LoRA adapter 'ft:night-1' added successfully."
    )
    cards = {model.id: model for model in client.models.list()}
    assert set(cards) == {"tiny", "ft:night-1"}
    assert cards["ft:night-1"].model_extra == {
        "root": str(adapter),
        "parent": "tiny",
        "max_model_len": None,
        "permission": [],
    }
    assert _answer(client, "ft:night-1") != base_answer
    assert _answer(client, "tiny") == base_answer  # the base model is still served as it was

    again = httpx.post(
        f"{server.base_url}/load_lora_adapter", json={"lora_name": "ft:night-1", "lora_path": str(adapter)}
    )
    assert again.status_code == 400
    assert again.json()["error"]["message"] == "The lora adapter 'ft:night-1' has already been loaded."

    gone = httpx.post(f"{server.base_url}/unload_lora_adapter", json={"lora_name": "ft:night-1"})
    assert gone.status_code == 200
    with pytest.raises(NotFoundError):
        _answer(client, "ft:night-1")
    missing = httpx.post(f"{server.base_url}/unload_lora_adapter", json={"lora_name": "ft:night-1"})
    assert missing.status_code == 404 and "cannot be found" in missing.json()["error"]["message"]
    assert _answer(client, "tiny") == base_answer


def test_concurrent_requests_are_batched_with_the_answers_of_single_ones(
    server: ServerHandle, client: OpenAI, adapter: Path
) -> None:
    load_adapter(server.base_url, "ft:a", str(adapter))
    models = ["tiny", "ft:a"] * 4
    single = {model: _answer(client, model) for model in set(models)}
    before = httpx.get(f"{server.root_url}/admin/stats").json()
    answers: dict[int, str] = {}

    def ask(index: int, model: str) -> None:
        answers[index] = _answer(client, model)

    threads = [threading.Thread(target=ask, args=(i, model)) for i, model in enumerate(models)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = httpx.get(f"{server.root_url}/admin/stats").json()
    assert after["requests"] - before["requests"] == len(models)
    assert after["batches"] - before["batches"] < len(models)  # batched, adapters mixed in a batch
    assert after["largest_batch"] > 1
    assert [answers[i] for i in range(len(models))] == [single[model] for model in models]


def test_retrains_adapter_client_loads_once_and_says_what_went_wrong(
    server: ServerHandle, adapter: Path
) -> None:
    assert load_adapter(server.base_url, "ft:b", str(adapter)) is True
    assert load_adapter(server.base_url, "ft:b", str(adapter)) is False  # already loaded: nothing to do
    with pytest.raises(ProviderError, match=r"refused adapter 'ft:c'.*No adapter found"):
        load_adapter(server.base_url, "ft:c", "/nowhere/adapter")
    assert unload_adapter(server.base_url, "ft:b") is True
    assert unload_adapter(server.base_url, "ft:b") is False  # already gone
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        load_adapter("http://127.0.0.1:9/v1", "ft:b", str(adapter), timeout=2)


def test_an_adapter_is_read_from_the_bucket(
    s3_env: S3Settings, server: ServerHandle, adapter: Path, client: OpenAI
) -> None:
    store = ObjectStore.from_settings(s3_env)
    store.ensure_bucket()
    for path in adapter.iterdir():
        store.put_bytes(f"models/lora/v1-abc/adapter/{path.name}", path.read_bytes())
    uri = store.uri("models/lora/v1-abc/adapter/")
    assert load_adapter(server.base_url, "ft:from-s3", uri) is True
    assert _answer(client, "ft:from-s3") != _answer(client, "tiny")
    with pytest.raises(ProviderError, match="No adapter found"):
        load_adapter(server.base_url, "ft:none", store.uri("models/lora/missing/adapter/"))
