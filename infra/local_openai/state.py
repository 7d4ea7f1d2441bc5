"""What every route and the worker share: the store, faults, the learner cache and counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from local_openai.errors import ApiError
from local_openai.faults import Faults
from local_openai.learner import Learner
from local_openai.store import Store

__all__ = ["BASE_MODELS", "TOGETHER_BASE_MODELS", "ServerState", "StateDep", "public"]

# Open-weight models Together fine-tunes (its API names), for the jobs of ``routes_together``.
TOGETHER_BASE_MODELS: dict[str, int] = {
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference": 1721692800,
    "Qwen/Qwen2.5-7B-Instruct": 1726531200,
    "Qwen/Qwen3-8B": 1745884800,
}

BASE_MODELS: dict[str, int] = {
    "gpt-4o-mini-2024-07-18": 1721172741,
    "gpt-4o-2024-08-06": 1722814719,
    "gpt-4.1-2025-04-14": 1744316542,
    "gpt-4.1-mini-2025-04-14": 1744317547,
    "gpt-4.1-nano-2025-04-14": 1744321707,
    "gpt-3.5-turbo-0125": 1706048358,
    # Reasoning models, so clients meet their request rules (routes_chat._check_reasoning_params).
    "o4-mini-2025-04-16": 1744761600,
    "gpt-5-mini-2025-08-07": 1754524800,
    **TOGETHER_BASE_MODELS,
}


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document without its private (underscore) fields."""
    return {key: value for key, value in doc.items() if not key.startswith("_")}


@dataclass
class ServerState:
    store: Store
    faults: Faults
    org: str = "retrain-local"
    step_delay: float = 0.01
    started_at: float = field(default_factory=time.time)
    route_counts: Counter[str] = field(default_factory=Counter)
    chat_counts: Counter[str] = field(default_factory=Counter)
    _learners: dict[str, Learner] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count_route(self, key: str) -> None:
        with self._lock:
            self.route_counts[key] += 1

    def count_chat(self, model: str) -> None:
        with self._lock:
            self.chat_counts[model] += 1

    def learner(self, model: str) -> Learner | None:
        """The learner serving a fine-tuned model (or checkpoint), or None for a base model."""
        if model in BASE_MODELS:
            return None
        doc = self.store.get("model", model)
        if doc is None:
            raise ApiError(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        with self._lock:
            cached = self._learners.get(model)
        if cached is None:
            cached = Learner.load(self.store.learner_path(doc["_learner"]))
            with self._lock:
                self._learners[model] = cached
        return cached

    def forget(self, model: str) -> None:
        with self._lock:
            self._learners.pop(model, None)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


StateDep = Annotated[ServerState, Depends(_state)]
