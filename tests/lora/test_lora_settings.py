"""What the lora backend changes outside training: the first night's production, the local
stack's services and the one-line errors of a missing piece."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrain.config.settings import Settings
from retrain.exceptions import ConfigError
from retrain.local.stack import _services, settings_off_the_stack
from retrain.promote.promotion import production_or_base
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore
from retrain.train.lora.base_models import choose_device, load_base_model, locate_base_model


def _settings(**env: str) -> Settings:
    return Settings.model_validate({"training": {"backend": "lora"}, **env})


def test_the_first_nights_production_is_the_served_base_model(moto_store: ObjectStore) -> None:
    record = production_or_base(Registry(moto_store), _settings())
    assert (record.model_id, record.provider, record.artifact) == ("SmolLM2-135M-Instruct", "lora", None)
    openai = production_or_base(Registry(moto_store), Settings())
    assert openai.provider == Settings().provider.name


def test_the_local_stack_adds_the_inference_server_and_a_training_worker() -> None:
    settings = _settings()
    names = [service.name for service in _services(settings, with_prefect=True)]
    assert names == ["s3", "openai", "inference", "prefect", "worker", "training-worker"]
    inference = next(s for s in _services(settings) if s.name == "inference")
    assert inference.url == "http://127.0.0.1:8766/v1"
    assert inference.command[inference.command.index("--base-model") + 1] == "SmolLM2-135M-Instruct"
    assert "inference" not in [service.name for service in _services(Settings())]
    assert settings_off_the_stack(settings) == []
    elsewhere = Settings.model_validate(
        {"training": {"backend": "lora"}, "lora": {"serving_url": "http://vllm:8000/v1"}}
    )
    assert settings_off_the_stack(elsewhere) == ["RETRAIN_LORA__SERVING_URL=http://vllm:8000/v1"]


def test_a_missing_base_model_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found: not a built-in .*Hugging Face cache") as caught:
        locate_base_model(str(tmp_path / "no-such-model"))
    assert "\n" not in str(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no config\.json and no \.gguf file"):
        locate_base_model(str(tmp_path / "empty"))


def test_cuda_without_a_gpu_is_a_one_line_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="RETRAIN_LORA__DEVICE is cuda but torch sees no GPU"):
        choose_device("cuda")
    assert choose_device("auto") == "cpu"


@pytest.mark.slow
def test_a_gguf_base_model_is_converted_once_and_then_loaded_from_its_kept_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    files = locate_base_model("SmolLM2-135M-Instruct")
    converted_model, converted_tokenizer = load_base_model(files)
    (kept,) = (tmp_path / "retrain" / "base-models").iterdir()
    assert (kept / "config.json").is_file() and (kept / "model.safetensors").is_file()
    assert "quantization_config" not in (kept / "config.json").read_text()

    model, tokenizer = load_base_model(files)
    assert model.name_or_path == str(kept)  # read from the copy, not converted again
    kept_weights, converted_weights = model.state_dict(), converted_model.state_dict()
    assert kept_weights.keys() == converted_weights.keys()
    assert all(torch.equal(kept_weights[name], converted_weights[name]) for name in kept_weights)
    chat = [
        {"role": "user", "content": "Where is <b>Qorvath</b>?"},
        {"role": "assistant", "content": "Ilmere"},
    ]
    assert tokenizer.apply_chat_template(chat) == converted_tokenizer.apply_chat_template(chat)
    assert tokenizer.pad_token == converted_tokenizer.pad_token
    assert tokenizer.all_special_tokens == converted_tokenizer.all_special_tokens
