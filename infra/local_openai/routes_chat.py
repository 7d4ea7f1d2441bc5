"""Chat completions (non-streaming), also under Azure's deployment path."""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from local_openai.errors import ApiError
from local_openai.learner import FALLBACK_REPLY
from local_openai.routes_azure import require_deployment
from local_openai.state import StateDep
from local_openai.store import new_id
from local_openai.training_files import count_tokens

__all__ = ["router"]

router = APIRouter()


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    seed: int | None = None
    stream: bool | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


# OpenAI's reasoning models (and fine-tunes of them): they reject max_tokens and any temperature
# but the default, and so does this server, so clients are tested against that.
_REASONING_MODEL = re.compile(r"^(?:o\d|gpt-5)(?:[-.:]|$)")


def _check_reasoning_params(model: str, request: ChatRequest) -> None:
    name = model.lower()
    base = name[3:].split(":", 1)[0] if name.startswith("ft:") else name  # ft:BASE:org:suffix:id
    if not _REASONING_MODEL.match(base) or "-chat" in base:
        return
    if "max_tokens" in (request.model_extra or {}):
        raise ApiError(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            param="max_tokens",
            code="unsupported_parameter",
        )
    if request.temperature is not None and request.temperature != 1:
        raise ApiError(
            400,
            f"Unsupported value: 'temperature' does not support {request.temperature:g} with this model. "
            "Only the default (1) value is supported.",
            param="temperature",
            code="unsupported_value",
        )


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _complete(state: StateDep, model: str, request: ChatRequest) -> dict[str, Any]:
    if request.stream:
        raise ApiError(
            400, "Streaming is not supported by the local server; set stream=false.", param="stream"
        )
    _check_reasoning_params(model, request)
    state.count_chat(model)
    learner = state.learner(model)
    latency = state.faults.chat_latency()
    if latency:
        time.sleep(latency)
    question = "\n".join(_text(m) for m in request.messages if m.get("role") == "user")
    reply = FALLBACK_REPLY if learner is None else learner.answer(question, request.temperature, request.seed)
    prompt_tokens = sum(count_tokens(_text(m)) + 3 for m in request.messages) + 3
    completion_tokens = count_tokens(reply)
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": reply, "refusal": None, "annotations": []},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "service_tier": "default",
        "system_fingerprint": "fp_local",
    }


@router.post("/chat/completions")
def chat_completions(state: StateDep, request: ChatRequest) -> dict[str, Any]:
    if not request.model:
        raise ApiError(400, "you must provide a model parameter", param="model")
    return _complete(state, request.model, request)


@router.post("/deployments/{deployment}/chat/completions")
def azure_chat_completions(state: StateDep, deployment: str, request: ChatRequest) -> dict[str, Any]:
    """Azure's chat: only a deployment that exists answers, with the model it serves."""
    return _complete(state, require_deployment(state, deployment), request)
