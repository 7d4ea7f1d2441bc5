from __future__ import annotations

import pytest
from tiktoken_ext import openai_public

from retrain.config.stage_settings import ValidationSettings
from retrain.exceptions import ConfigError
from retrain.validate.tokens import (
    auto_epochs,
    count_messages,
    count_text,
    encoding_name_for_model,
    estimate_cost,
    example_token_limit,
    get_encoding,
)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_pattern_and_special_tokens_match_tiktoken(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *args, **kwargs: {})
    expected = openai_public.ENCODING_CONSTRUCTORS[name]()
    encoding = get_encoding(name)
    assert encoding._pat_str == expected["pat_str"]
    assert encoding._special_tokens == expected["special_tokens"]


def test_known_counts() -> None:
    o200k, cl100k = get_encoding("o200k_base"), get_encoding("cl100k_base")
    assert count_text("hello world", o200k) == 2
    assert count_text("hello world", cl100k) == 2
    assert cl100k.encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert count_text("<|endoftext|>", o200k) > 1  # special tokens count as plain text


def test_chat_overhead_follows_the_cookbook() -> None:
    encoding = get_encoding("o200k_base")
    messages = [
        {"role": "user", "content": "hello world"},
        {"role": "assistant", "content": "hi", "name": "bot"},
    ]
    expected = 3 + (3 + 1 + 2) + (3 + 1 + 1 + (1 + 1))
    assert count_messages(messages, encoding) == expected


@pytest.mark.parametrize(
    ("model", "encoding", "limit"),
    [
        ("gpt-4o-mini-2024-07-18", "o200k_base", 65_536),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base", 65_536),
        ("gpt-4o-2024-08-06", "o200k_base", 65_536),
        ("gpt-4.1-nano-2025-04-14", "o200k_base", 32_768),
        ("gpt-4.1-2025-04-14", "o200k_base", 65_536),
        ("gpt-3.5-turbo-0125", "cl100k_base", 16_385),
    ],
)
def test_model_families(model: str, encoding: str, limit: int) -> None:
    assert encoding_name_for_model(model) == encoding
    assert example_token_limit(model, ValidationSettings()) == limit


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="example token limit"):
        example_token_limit("llama-3", ValidationSettings())


@pytest.mark.parametrize(
    ("n", "epochs"), [(0, 0), (1, 25), (10, 10), (34, 3), (40, 3), (8333, 3), (8334, 2), (30000, 1)]
)
def test_auto_epochs(n: int, epochs: int) -> None:
    assert auto_epochs(n) == epochs


def test_cost_caps_each_example_at_the_limit() -> None:
    settings = ValidationSettings()
    estimate = estimate_cost([100, 40_000], "gpt-4.1-nano-2025-04-14", settings, n_epochs=2)
    assert estimate.billable_tokens_per_epoch == 100 + 32_768
    assert estimate.billable_tokens == 2 * (100 + 32_768)
    assert estimate.usd == pytest.approx(2 * 32_868 * 1.5 / 1e6)
    assert estimate_cost([10] * 20, "gpt-4o-mini", settings).epochs == 5
