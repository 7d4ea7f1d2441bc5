"""Fixtures of the lora backend's tests; they skip, saying why, without the training extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.lora.tiny_model import build_tiny_model

_MISSING = [
    name for name in ("torch", "transformers", "peft", "trl") if importlib.util.find_spec(name) is None
]
if _MISSING:
    pytest.skip(
        f"the training extra is not installed ({', '.join(_MISSING)} missing): run `make training`",
        allow_module_level=True,
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local base-model folder holding the tiny random causal LM."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
