"""The optional moderation pre-check: each new example through the provider's moderation endpoint.

OpenAI runs a moderation evaluation after training and refuses to release a model trained on
content it flags, after the job was paid for. With ``RETRAIN_VALIDATION__MODERATION=true`` a
batch's candidate examples (those no other check quarantined, so no duplicate) are sent to
``moderations.create`` first, and a flagged one is quarantined as ``moderation_flagged`` with
the categories as the reason.

- **batched**: up to ``moderation_batch_size`` examples per request, each example's message
  texts joined into one input;
- **rate-limited**: at most ``moderation_requests_per_second``; a 429 is retried by the SDK, and
  after its retries the night fails as rate-limited, which Prefect retries;
- **cached by content hash**: verdicts are keyed by ``example_hash``, so the same example is
  never sent twice in a batch, and a re-run of a batch (after a crash) reads them back from
  ``state/moderation/{batch_id}.json`` instead of asking again;
- **counted**: requests, examples sent and from the cache, flagged, the tokens sent and their
  cost (``moderation_usd_per_million_tokens``; OpenAI's moderation endpoint is free) go in the
  batch manifest and the validation summary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from openai import OpenAI

from retrain.config.services import ProviderSettings
from retrain.config.stage_settings import ValidationSettings
from retrain.providers.clients import api_errors, make_client

__all__ = ["ModerationStats", "Moderator", "example_text", "moderation_line", "moderator_for"]


def example_text(raw: bytes) -> str:
    """The text a person wrote in an example: every message's content, in order, one per line."""
    texts: list[str] = []
    _collect(orjson.loads(raw), texts)
    return "\n".join(texts)


def _collect(value: Any, texts: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("content", "text") and isinstance(item, str):
                texts.append(item)
            else:
                _collect(item, texts)
    elif isinstance(value, list):
        for item in value:
            _collect(item, texts)


@dataclass
class ModerationStats:
    """What a batch's moderation pre-check did and cost."""

    model: str
    requests: int = 0
    sent: int = 0
    from_cache: int = 0
    flagged: int = 0
    tokens: int = 0
    usd: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Moderator:
    """Moderation verdicts for examples, batched, rate-limited and cached by content hash.

    ``cache`` maps an ``example_hash`` to the categories it was flagged for (empty: not flagged).
    """

    client: OpenAI
    provider: ProviderSettings
    settings: ValidationSettings
    cache: dict[str, list[str]] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    stats: ModerationStats = field(init=False)
    _last_request: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        self.stats = ModerationStats(self.settings.moderation_model)

    def flagged(self, examples: Sequence[tuple[str, bytes, int]]) -> list[list[str]]:
        """For each (example_hash, raw line, tokens): the categories it is flagged for ([]: none)."""
        wanted = {digest: (raw, tokens) for digest, raw, tokens in examples if digest not in self.cache}
        self.stats.from_cache += len(examples) - len(wanted)
        pending = list(wanted.items())
        size = self.settings.moderation_batch_size
        for start in range(0, len(pending), size):
            self._ask(pending[start : start + size])
        verdicts = [self.cache[digest] for digest, _, _ in examples]
        self.stats.flagged += sum(1 for categories in verdicts if categories)
        return verdicts

    def _ask(self, chunk: Sequence[tuple[str, tuple[bytes, int]]]) -> None:
        self._wait_for_the_rate_limit()
        with api_errors("moderating new examples", self.provider):
            answer = self.client.moderations.create(
                model=self.settings.moderation_model, input=[example_text(raw) for _, (raw, _) in chunk]
            )
        tokens = sum(tokens for _, (_, tokens) in chunk)
        self.stats.requests += 1
        self.stats.sent += len(chunk)
        self.stats.tokens += tokens
        self.stats.usd = round(
            self.stats.usd + tokens * self.settings.moderation_usd_per_million_tokens / 1_000_000, 6
        )
        for (digest, _), result in zip(chunk, answer.results, strict=True):
            named = sorted(name for name, hit in result.categories.model_dump(by_alias=True).items() if hit)
            self.cache[digest] = (named or ["unspecified"]) if result.flagged else []

    def _wait_for_the_rate_limit(self) -> None:
        gap = 1.0 / self.settings.moderation_requests_per_second
        wait = self._last_request + gap - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._last_request = self.clock()


def moderator_for(settings: ValidationSettings, provider: Callable[[], ProviderSettings]) -> Moderator | None:
    """The moderation pre-check on the provider ``provider()`` returns with its credentials (asked
    only when the pre-check is on), or None when it is off."""
    if not settings.moderation:
        return None
    resolved = provider()
    return Moderator(make_client(resolved), resolved, settings)


def moderation_line(stats: dict[str, Any]) -> str:
    """``40 example(s) sent in 2 request(s), 3 from the cache, 1 flagged; 1,204 tokens, $0.00``."""
    return (
        f"{stats['sent']:,} example(s) sent in {stats['requests']:,} request(s) to {stats['model']}, "
        f"{stats['from_cache']:,} from the cache, {stats['flagged']:,} flagged; "
        f"{stats['tokens']:,} tokens, ${stats['usd']:,.2f}"
    )
