"""Fault injection: rate limits, server errors, slowness and failing or hanging jobs, on demand.

Rules match an API route by alias (``chat``, ``files``, ``jobs``, ``models``, ``*``) or by a
glob over the path without its ``/v1`` or ``/openai`` prefix (``/fine_tuning/jobs/*``).
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["FaultConfig", "FaultRule", "Faults", "api_path"]

_ALIASES: dict[str, Callable[[str], bool]] = {
    "chat": lambda path: path.endswith("/chat/completions"),
    "files": lambda path: path.startswith("/files"),
    "jobs": lambda path: path.startswith("/fine_tuning"),
    "models": lambda path: path.startswith("/models"),
    "*": lambda path: True,
}


def api_path(path: str) -> str | None:
    """The route path without its API prefix, or None for paths outside the API (admin, health)."""
    for prefix in ("/v1", "/openai"):
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return None


class FaultRule(BaseModel):
    route: str = Field(default="*", description="Alias (chat, files, jobs, models, *) or a path glob.")
    kind: Literal["429", "500", "slow"]
    rate: float = Field(default=1.0, ge=0, le=1)
    retry_after: float = Field(default=1.0, ge=0)
    delay: float = Field(default=1.0, ge=0)
    count: int | None = Field(default=None, ge=0, description="Stop after this many injections.")

    def matches(self, path: str) -> bool:
        alias = _ALIASES.get(self.route)
        return alias(path) if alias else fnmatch.fnmatchcase(path, self.route)


class FaultConfig(BaseModel):
    rules: list[FaultRule] = Field(default_factory=list)
    chat_latency_seconds: float = Field(default=0.0, ge=0)
    next_job: Literal["fail", "hang"] | None = None

    @classmethod
    def from_file(cls, path: Path) -> FaultConfig:
        return cls.model_validate_json(path.read_bytes())


class Faults:
    """The live fault configuration; thread-safe, seeded for repeatable runs."""

    def __init__(self, config: FaultConfig | None = None, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._config = config or FaultConfig()
        self._used: Counter[int] = Counter()
        self.injected: Counter[str] = Counter()

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._config.model_copy(deep=True)

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = config
            self._used.clear()

    def pick(self, path: str) -> FaultRule | None:
        """The rule to apply to one request to ``path`` (already stripped of its prefix), if any."""
        with self._lock:
            for index, rule in enumerate(self._config.rules):
                if not rule.matches(path):
                    continue
                if rule.count is not None and self._used[index] >= rule.count:
                    continue
                if self._random.random() >= rule.rate:
                    continue
                self._used[index] += 1
                self.injected[rule.kind] += 1
                return rule
        return None

    def chat_latency(self) -> float:
        with self._lock:
            return self._config.chat_latency_seconds

    def take_next_job(self) -> Literal["fail", "hang"] | None:
        """The fault for the job being created now; it applies once."""
        with self._lock:
            fault = self._config.next_job
            self._config = self._config.model_copy(update={"next_job": None})
            return fault
