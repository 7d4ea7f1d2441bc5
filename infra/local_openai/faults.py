"""Fault injection: rate limits, quotas, server errors, slowness and misbehaving jobs, on demand.

Rules match an API route by alias (``chat``, ``files``, ``jobs``, ``models``, ``moderations``,
``*``) or by a glob over the path without its ``/v1``, ``/openai`` or ``/together/v1`` prefix
(``/fine_tuning/jobs/*``, ``/fine-tunes/*``; ``jobs`` covers both).

Rule kinds: ``429`` (a rate limit, ``rate_limit_exceeded``, with ``Retry-After``),
``daily_limit`` (the service's per-day fine-tuning job limit, ``daily_rate_limit_exceeded``),
``job_limit`` (too many active fine-tuning jobs), ``quota`` (``insufficient_quota``: out of
credit), ``403`` (refused, as OpenAI refuses new fine-tuning jobs to organisations it no longer
serves), ``500`` and ``slow``. ``next_job`` shapes the next job created: ``fail`` (fails
halfway), ``hang`` (stays running until cancelled), ``cancel`` (cancelled halfway, as if by an
operator), ``blocked`` (trains, then fails its post-training safety checks), ``invalid_file``
(fails file validation, ``invalid_training_file``), ``no_model`` (succeeds without a
model) and ``degraded`` (succeeds with a model that learned each question with another's
answer: much worse than one trained on the same data). ``hold_jobs`` pauses the progress of
every running job while set.
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

__all__ = [
    "RATE_LIMIT_KINDS",
    "REFUSED_MESSAGE",
    "FaultConfig",
    "FaultRule",
    "Faults",
    "NextJob",
    "api_path",
    "limit_error",
]

NextJob = Literal["fail", "hang", "cancel", "blocked", "invalid_file", "no_model", "degraded"]

RATE_LIMIT_KINDS = {"429", "daily_limit", "job_limit", "quota"}

_LIMIT_ERRORS: dict[str, tuple[str, str]] = {
    "429": ("rate_limit_exceeded", "Rate limit reached (injected by the local server)."),
    "daily_limit": (
        "daily_rate_limit_exceeded",
        "This fine-tune request has been rate-limited. Your organization has reached the maximum "
        "of 3 fine-tuning requests per day for the model (injected by the local server).",
    ),
    "job_limit": (
        "concurrent_jobs_limit",
        "This fine-tune request has been rate-limited. Your organization has reached the maximum "
        "of 3 active fine-tuning jobs (injected by the local server).",
    ),
    "quota": (
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details "
        "(injected by the local server).",
    ),
}

REFUSED_MESSAGE = (
    "Your organization does not have access to create fine-tuning jobs (injected by the local server)."
)

_ALIASES: dict[str, Callable[[str], bool]] = {
    "chat": lambda path: path.endswith("/chat/completions"),
    "files": lambda path: path.startswith("/files"),
    "jobs": lambda path: path.startswith(("/fine_tuning", "/fine-tunes")),
    "models": lambda path: path.startswith("/models"),
    "moderations": lambda path: path.startswith("/moderations"),
    "*": lambda path: True,
}


def api_path(path: str) -> str | None:
    """The route path without its API prefix, or None for paths outside the API (admin, health)."""
    for prefix in ("/together/v1", "/v1", "/openai"):
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return None


class FaultRule(BaseModel):
    route: str = Field(default="*", description="Alias (chat, files, jobs, models, *) or a path glob.")
    method: str | None = Field(default=None, description="Only requests with this HTTP method; empty: any.")
    kind: Literal["429", "daily_limit", "job_limit", "quota", "403", "500", "slow"]
    rate: float = Field(default=1.0, ge=0, le=1)
    retry_after: float = Field(default=1.0, ge=0)
    delay: float = Field(default=1.0, ge=0)
    count: int | None = Field(default=None, ge=0, description="Stop after this many injections.")

    def matches(self, path: str, method: str | None = None) -> bool:
        if self.method is not None and method is not None and self.method.upper() != method.upper():
            return False
        alias = _ALIASES.get(self.route)
        return alias(path) if alias else fnmatch.fnmatchcase(path, self.route)


class FaultConfig(BaseModel):
    rules: list[FaultRule] = Field(default_factory=list)
    chat_latency_seconds: float = Field(default=0.0, ge=0)
    next_job: NextJob | None = None
    hold_jobs: bool = Field(default=False, description="While true, running jobs make no progress.")

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

    def pick(self, path: str, method: str | None = None) -> FaultRule | None:
        """The rule to apply to one request to ``path`` (already stripped of its prefix), if any."""
        with self._lock:
            for index, rule in enumerate(self._config.rules):
                if not rule.matches(path, method):
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

    def holding_jobs(self) -> bool:
        with self._lock:
            return self._config.hold_jobs

    def take_next_job(self) -> NextJob | None:
        """The fault for the job being created now; it applies once."""
        with self._lock:
            fault = self._config.next_job
            self._config = self._config.model_copy(update={"next_job": None})
            return fault


def limit_error(rule: FaultRule) -> tuple[str, str]:
    """The error code and message of a rate-limit-like rule (429, daily_limit, job_limit, quota)."""
    return _LIMIT_ERRORS[rule.kind]
