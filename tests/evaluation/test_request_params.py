"""Which token-limit field an eval request sends, and that the local server takes either."""

from __future__ import annotations

from pathlib import Path

import pytest
from local_openai import serve_in_thread
from openai import BadRequestError, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from retrain.eval_runner import cache_prefix, request_params, token_limit_field
from retrain.settings import EvaluationSettings


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("o1", "max_completion_tokens"),
        ("o3-mini-2025-01-31", "max_completion_tokens"),
        ("o4-mini", "max_completion_tokens"),
        ("gpt-5", "max_completion_tokens"),
        ("gpt-5-mini-2025-08-07", "max_completion_tokens"),
        ("ft:o4-mini-2025-04-16:acme::abc123", "max_completion_tokens"),
        ("gpt-4o-mini-2024-07-18", "max_tokens"),
        ("ft:gpt-4.1-nano-2025-04-14:acme:x:abc", "max_tokens"),
        ("gpt-4.1", "max_tokens"),
        ("omni-moderation-latest", "max_tokens"),
        ("my-o3-deployment", "max_tokens"),
    ],
)
def test_auto_sends_max_completion_tokens_to_reasoning_models(model: str, field: str) -> None:
    settings = EvaluationSettings(max_tokens=64)
    assert token_limit_field(model, settings) == field
    assert request_params(settings, model) == {"temperature": 0, "seed": settings.seed, field: 64}


def test_an_explicit_setting_overrides_the_guess_and_changes_the_cache_key() -> None:
    forced = EvaluationSettings(token_limit_parameter="max_completion_tokens")
    assert token_limit_field("my-azure-deployment", forced) == "max_completion_tokens"
    assert token_limit_field("o3", EvaluationSettings(token_limit_parameter="max_tokens")) == "max_tokens"
    assert cache_prefix("gpt-4o", forced) != cache_prefix("gpt-4o", EvaluationSettings())


@pytest.mark.slow
def test_the_local_server_reads_max_completion_tokens(tmp_path: Path) -> None:
    model = "gpt-4o-mini-2024-07-18"
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "How do I reset my password?"}]
    with serve_in_thread(tmp_path) as server:
        client = OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        new = client.chat.completions.create(model=model, messages=messages, max_completion_tokens=16)
        old = client.chat.completions.create(model=model, messages=messages, max_tokens=16)
        assert new.choices[0].message.content == old.choices[0].message.content
        with pytest.raises(BadRequestError):
            client.chat.completions.create(model=model, messages=messages, max_completion_tokens=0)
