"""Asking a model one eval prompt: its cached answer if there is one, else a chat completion.

Models answer through chat completions of any OpenAI-compatible provider (never a hosted
evals API), with the parameters of ``request_params``: bounded concurrency shared by all
models, a client-side rate limiter, the SDK's retries on 429/5xx (they honour
``Retry-After``) and a per-item timeout. A failed item is an answer with an error; a refused
API key or a model the provider does not serve fails the run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.answer_cache import AnswerCache
from retrain.evaluate.rate_limit import RateLimiter
from retrain.evaluate.request_params import request_params
from retrain.evaluate.targets import ModelTarget
from retrain.exceptions import EvaluationError, ProviderError
from retrain.providers.clients import api_key_source, make_async_client
from retrain.storage.object_store import ObjectStore

__all__ = ["Asker", "ModelAnswer"]

logger = logging.getLogger(__name__)


@dataclass
class ModelAnswer:
    """A model's answer to one prompt (``output`` None and ``error`` set if it gave none)."""

    output: str | None
    usage: dict[str, Any] | None
    latency_s: float
    error: str | None
    cached: bool


def _estimate_tokens(messages: Sequence[dict[str, Any]], max_tokens: int) -> int:
    return sum(len(str(m.get("content", ""))) for m in messages) // 4 + max_tokens


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")


class Asker:
    """Sends chat completions, each within the semaphore, the rate limiter and the timeout,
    unless the answer is cached; every answer received is cached (outside the semaphore)."""

    def __init__(self, store: ObjectStore, settings: EvaluationSettings) -> None:
        self._settings = settings
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        self._limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute)
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        self._cache = AnswerCache(store, settings)

    @property
    def samples_per_item(self) -> int:
        return self._settings.samples_per_item

    async def open(self, target: ModelTarget) -> None:
        self._clients[target.label] = make_async_client(
            target.provider, max_retries=self._settings.max_retries
        )
        await self._cache.open(target)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._cache.close()

    async def ask(
        self, target: ModelTarget, messages: list[dict[str, Any]], item_hash: str, sample: int = 0
    ) -> ModelAnswer:
        async with self._semaphore:
            cached = await self._cache.get(target, item_hash, sample)
            if cached is not None:
                return ModelAnswer(
                    cached["output"], cached.get("usage"), cached.get("latency_s", 0.0), None, True
                )
            await self._limiter.acquire(_estimate_tokens(messages, self._settings.max_tokens))
            params = request_params(self._settings, target.model_id, sample)
            started = time.perf_counter()
            try:
                response = await asyncio.wait_for(
                    self._clients[target.label].chat.completions.create(
                        model=target.served_as,
                        messages=messages,  # type: ignore[arg-type]
                        **params,
                    ),
                    timeout=self._settings.item_timeout_seconds,
                )
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise ProviderError(
                    f"provider {target.provider.name!r} refused the API key ({_describe(exc)}): "
                    f"check {api_key_source(target.provider)}"
                ) from exc
            except openai.NotFoundError as exc:
                deployed = f" through deployment {target.deployment!r}" if target.deployment else ""
                hint = (
                    "on Azure a model answers only once deployed: check RETRAIN_AZURE__* (retrain deploys "
                    "the models it evaluates) or the deployment name"
                    if target.provider.kind == "azure"
                    else "check the model id or alias"
                )
                raise EvaluationError(
                    f"model {target.model_id!r} ({target.label}) is not served by provider "
                    f"{target.provider.name!r}{deployed}: {hint}"
                ) from exc
            except (openai.APIError, TimeoutError) as exc:
                latency = time.perf_counter() - started
                logger.warning("%s: item %s failed: %s", target.label, item_hash[:12], _describe(exc))
                return ModelAnswer(None, None, latency, _describe(exc), False)
        latency = time.perf_counter() - started
        output = response.choices[0].message.content if response.choices else None
        usage = response.usage.model_dump() if response.usage else None
        record: dict[str, Any] = {
            "model": target.model_id,
            "params": params,
            "output": output or "",
            "usage": usage,
            "latency_s": latency,
        }
        await self._cache.put(target, item_hash, record, sample)
        return ModelAnswer(output or "", usage, latency, None, False)
