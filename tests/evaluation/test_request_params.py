"""Which token-limit field and temperature an eval request sends, and that the local server
takes them and refuses what OpenAI's reasoning models refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from local_openai import serve_in_thread
from openai import BadRequestError, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from retrain.config.services import ProviderSettings
from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.answer_cache import cache_prefix
from retrain.evaluate.chat import ask_model
from retrain.evaluate.request_params import is_reasoning_model, request_params, token_limit_field

REASONING = [
    "o1",
    "o3-mini-2025-01-31",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini-2025-08-07",
    "ft:o4-mini-2025-04-16:acme::abc123",
    "ft:gpt-5-mini-2025-08-07:acme:chat-bot:abc123",
]
OTHERS = [
    ("gpt-4o-mini-2024-07-18", "max_tokens"),
    ("ft:gpt-4.1-nano-2025-04-14:acme:x:abc", "max_tokens"),
    ("gpt-4.1", "max_tokens"),
    ("gpt-5-chat-latest", "max_completion_tokens"),
    ("omni-moderation-latest", "max_tokens"),
    ("my-o3-deployment", "max_tokens"),
]


@pytest.mark.parametrize("model", REASONING)
def test_reasoning_models_get_max_completion_tokens_and_their_default_temperature(model: str) -> None:
    settings = EvaluationSettings(max_tokens=64)
    assert is_reasoning_model(model)
    assert token_limit_field(model, settings) == "max_completion_tokens"
    assert request_params(settings, model) == {"seed": settings.seed, "max_completion_tokens": 64}


@pytest.mark.parametrize(("model", "field"), OTHERS)
def test_other_models_get_temperature_zero(model: str, field: str) -> None:
    settings = EvaluationSettings(max_tokens=64)
    assert not is_reasoning_model(model)
    assert token_limit_field(model, settings) == field
    assert request_params(settings, model) == {"temperature": 0, "seed": settings.seed, field: 64}


def test_the_temperature_setting_overrides_the_guess_and_changes_the_cache_key() -> None:
    send = EvaluationSettings(temperature_parameter="send")
    omit = EvaluationSettings(temperature_parameter="omit")
    assert request_params(send, "o3")["temperature"] == 0
    assert "temperature" not in request_params(omit, "my-azure-deployment")
    assert cache_prefix("my-azure-deployment", omit) != cache_prefix(
        "my-azure-deployment", EvaluationSettings()
    )


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


@pytest.mark.slow
def test_the_local_server_takes_what_we_send_and_refuses_what_reasoning_models_refuse(
    tmp_path: Path,
) -> None:
    settings = EvaluationSettings(max_tokens=16)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "How do I reset my password?"}]
    with serve_in_thread(tmp_path) as server:
        client = OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        served = [
            "o4-mini-2025-04-16",
            "gpt-5-mini-2025-08-07",
            "gpt-4o-mini-2024-07-18",
            "gpt-4.1-nano-2025-04-14",
        ]
        for model in served:
            reply = client.chat.completions.create(
                model=model, messages=messages, **request_params(settings, model)
            )
            assert reply.choices[0].message.content
        with pytest.raises(BadRequestError, match="'temperature' does not support 0"):
            client.chat.completions.create(
                model="o4-mini-2025-04-16", messages=messages, temperature=0, max_completion_tokens=16
            )
        with pytest.raises(BadRequestError, match="Use 'max_completion_tokens' instead"):
            client.chat.completions.create(model="ft:o3-mini:acme::x1", messages=messages, max_tokens=16)
        client.chat.completions.create(model="o4-mini-2025-04-16", messages=messages, temperature=1)


@pytest.mark.slow
def test_retrain_chat_sends_the_token_limit_each_model_takes(tmp_path: Path) -> None:
    with serve_in_thread(tmp_path) as server:
        provider = ProviderSettings(base_url=server.base_url, max_retries=0)
        for model in ("o4-mini-2025-04-16", "gpt-5-mini-2025-08-07", "gpt-4o-mini-2024-07-18"):
            answer = ask_model("How do I reset my password?", model, provider, max_tokens=16)
            assert answer and answer.model == model
