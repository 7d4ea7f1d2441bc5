"""The special tokens of an open-weight base model's tokenizer, read from its files.

Validation quarantines training text that a tokenizer would read as a special token
(``retrain.validate.special_tokens``). For the lora backend that is the base model's own
tokenizer: the ``special`` added tokens of a Hugging Face folder's ``tokenizer.json`` (and
``tokenizer_config.json``), or the control tokens of a GGUF file (what Hugging Face's tokenizer
makes of it: the built-in SmolLM2 has 17, from ``<|endoftext|>`` and ``<|im_start|>`` to
``<jupyter_code>``). Only JSON, or the ``gguf`` package of the training extra, is needed: not
transformers.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from retrain.config.settings import Settings
from retrain.exceptions import ConfigError
from retrain.train.lora.base_models import BaseModelFiles, locate_base_model, require_training_extra

__all__ = ["base_model_special_tokens", "training_special_tokens"]

_GGUF_CONTROL = 3  # gguf.TokenType.CONTROL


def training_special_tokens(settings: Settings) -> frozenset[str] | None:
    """The special tokens of the tokenizer that will train on the data: the lora base model's,
    or None for the OpenAI-shaped backend (validation then uses the OpenAI families' own)."""
    if settings.training.backend != "lora":
        return None
    return base_model_special_tokens(settings.lora.base_model)


@lru_cache(maxsize=4)
def base_model_special_tokens(name: str) -> frozenset[str]:
    """The strings the tokenizer of base model ``name`` reads as special tokens."""
    files = locate_base_model(name)
    tokens = _gguf_control_tokens(files) if files.gguf_file else _hugging_face_special_tokens(files.folder)
    if not tokens:
        raise ConfigError(
            f"base model {name!r}: found no special tokens in its tokenizer files in {files.folder}; "
            "it needs a tokenizer.json (or a GGUF file with its vocabulary)"
        )
    return tokens


def _hugging_face_special_tokens(folder: Path) -> frozenset[str]:
    found: set[str] = set()
    entries: list[Any] = []
    if (tokenizer := folder / "tokenizer.json").is_file():
        entries += json.loads(tokenizer.read_text(encoding="utf-8")).get("added_tokens", [])
    if (config := folder / "tokenizer_config.json").is_file():
        entries += json.loads(config.read_text(encoding="utf-8")).get("added_tokens_decoder", {}).values()
    for entry in entries:
        if isinstance(entry, dict) and entry.get("special") and isinstance(entry.get("content"), str):
            found.add(entry["content"])
    return frozenset(found)


def _gguf_control_tokens(files: BaseModelFiles) -> frozenset[str]:
    require_training_extra()
    from gguf import GGUFReader

    assert files.gguf_file is not None
    reader = GGUFReader(str(files.folder / files.gguf_file))
    tokens, types = reader.fields["tokenizer.ggml.tokens"], reader.fields["tokenizer.ggml.token_type"]
    return frozenset(
        bytes(tokens.parts[token]).decode("utf-8")
        for token, kind in zip(tokens.data, types.data, strict=True)
        if int(types.parts[kind][0]) == _GGUF_CONTROL
    )
