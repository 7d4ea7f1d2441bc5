"""The parameters an eval request sends: temperature, seed and the token-limit field.

Temperature 0 (reasoning models: their default) and a fixed seed, so a model's answers are
repeatable; the parameters are part of the key of a cached answer (``params_hash``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from retrain.config.stage_settings import EvaluationSettings
from retrain.validate.tokens import base_model_id

__all__ = ["is_reasoning_model", "params_hash", "request_params", "token_limit_field"]

_O_SERIES_OR_GPT5 = re.compile(r"^(?:o\d|gpt-5)(?:[-.:]|$)")


def is_reasoning_model(model_id: str) -> bool:
    """Whether ``model_id`` (or the base of a fine-tune of it) is an OpenAI reasoning model.

    o1, o3, o4 and gpt-5 (but not gpt-5-chat): they reject ``max_tokens`` and any temperature
    but the default.
    """
    base = base_model_id(model_id.lower())
    return bool(_O_SERIES_OR_GPT5.match(base)) and "-chat" not in base


def token_limit_field(model_id: str, settings: EvaluationSettings) -> str:
    """``max_completion_tokens`` for OpenAI's o-series and gpt-5 models (the reasoning ones
    reject ``max_tokens``), else ``max_tokens``, which every OpenAI-compatible server knows.

    ``RETRAIN_EVALUATION__TOKEN_LIMIT_PARAMETER`` overrides the guess from the model id (an
    Azure deployment name, for one, does not tell the model family).
    """
    if settings.token_limit_parameter != "auto":
        return settings.token_limit_parameter
    newer = _O_SERIES_OR_GPT5.match(base_model_id(model_id.lower()))
    return "max_completion_tokens" if newer else "max_tokens"


def request_params(settings: EvaluationSettings, model_id: str = "", sample: int = 0) -> dict[str, Any]:
    """The sampling parameters the eval requests of ``model_id`` use (part of the cache key).

    Temperature 0, unless the model is a reasoning model (which accepts only the default) or
    ``RETRAIN_EVALUATION__TEMPERATURE_PARAMETER`` says otherwise. With several samples per item
    (``samples_per_item``), each answer ``sample`` is drawn at ``sampling_temperature`` with a seed
    of its own.
    """
    send = settings.temperature_parameter
    several = settings.samples_per_item > 1
    params: dict[str, Any] = {}
    if send == "send" or (send == "auto" and not is_reasoning_model(model_id)):
        params["temperature"] = settings.sampling_temperature if several else 0
    seed = settings.seed + sample
    return params | {"seed": seed, token_limit_field(model_id, settings): settings.max_tokens}


def params_hash(settings: EvaluationSettings, model_id: str) -> str:
    """16 hex digits of the sha256 of ``request_params`` (keys sorted)."""
    params = orjson.dumps(request_params(settings, model_id), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(params).hexdigest()[:16]
