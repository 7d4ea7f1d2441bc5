"""The lora backend validates against its base model's own special tokens, read from its files."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from retrain.config.settings import Settings
from retrain.config.stage_settings import ValidationSettings
from retrain.exceptions import ConfigError
from retrain.train.lora.base_models import locate_base_model
from retrain.train.lora.special_tokens import base_model_special_tokens, training_special_tokens
from retrain.validate.batch import check_line


def _single_ids(tokenizer_folder: Path, tokens: frozenset[str], gguf_file: str | None = None) -> bool:
    """Whether Hugging Face's own tokenizer of the model reads each token as one id."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    options = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder), **options)
    return all(
        len(tokenizer(f"a{token}b", add_special_tokens=False)["input_ids"]) <= 3 for token in tokens
    ) and all(
        token in tokenizer.all_special_tokens or token in tokenizer.added_tokens_encoder for token in tokens
    )


def test_a_hugging_face_folder_s_special_tokens_come_from_its_tokenizer_json(tiny_model: Path) -> None:
    tokens = base_model_special_tokens(str(tiny_model))
    assert tokens == {"<|pad|>", "<|im_start|>", "<|im_end|>"}
    assert _single_ids(tiny_model, tokens)


@pytest.mark.slow
def test_the_built_in_smollm2_s_are_its_gguf_control_tokens() -> None:
    tokens = base_model_special_tokens("SmolLM2-135M-Instruct")
    assert len(tokens) == 17
    assert {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>"} <= tokens
    files = locate_base_model("SmolLM2-135M-Instruct")
    assert _single_ids(files.folder, tokens, files.gguf_file)


def test_lora_settings_quarantine_the_base_model_s_tokens_not_the_openai_ones(tiny_model: Path) -> None:
    settings = Settings.model_validate(
        {"training": {"backend": "lora"}, "lora": {"base_model": str(tiny_model)}}
    )
    own = training_special_tokens(settings)
    assert own == {"<|pad|>", "<|im_start|>", "<|im_end|>"}
    assert training_special_tokens(Settings()) is None

    def codes(text: str) -> list[str]:
        line = orjson.dumps(
            {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "a"}]}
        )
        checked = check_line(
            line, base_model="gpt-4o-mini", settings=ValidationSettings(), special_tokens=own
        )
        return [reason.code for reason in checked.reasons]

    assert codes("pad me <|pad|>") == ["special_token"]
    assert codes("fill <|fim_prefix|>") == []


def test_a_folder_without_tokenizer_files_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="found no special tokens in its tokenizer files"):
        base_model_special_tokens(str(tmp_path))
