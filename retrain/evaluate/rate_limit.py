"""A client-side rate limiter for asyncio: requests and tokens per minute, as token buckets.

Requests are paced evenly instead of bursting at the start of each minute (a burst is what
trips a provider's limit): the request bucket holds at most a tenth of a second's worth
(at least one request), so a stalled event loop cannot release a burst that arrives faster
than a provider's limit allows; the token bucket holds one second's worth (large requests
must fit). Waiters are served first come, first served.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]

_REQUEST_BURST_S = 0.1
_TOKEN_BURST_S = 1.0
_EPSILON = 1e-9  # a rounding error's shortfall is no reason to sleep (a sleep that short can loop)


class _Bucket:
    def __init__(self, per_minute: float, now: float, burst_seconds: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` (clamped to capacity) is available."""
        missing = min(amount, self.capacity) - self.level
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def take(self, amount: float) -> None:
        self.level -= min(amount, self.capacity)


class RateLimiter:
    """Paces calls to ``requests_per_minute`` and ``tokens_per_minute`` (either may be None: no limit)."""

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._requests = _Bucket(requests_per_minute, now, _REQUEST_BURST_S) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute, now, _TOKEN_BURST_S) if tokens_per_minute else None
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self._requests is not None or self._tokens is not None

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of about ``tokens`` tokens fits both budgets, then spend them."""
        if not self.enabled:
            return
        pairs = ((self._requests, 1.0), (self._tokens, float(tokens)))
        buckets = [(bucket, amount) for bucket, amount in pairs if bucket is not None]
        async with self._lock:
            while True:
                now = self._clock()
                for bucket, _ in buckets:
                    bucket.refill(now)
                delay = max(bucket.wait_for(amount) for bucket, amount in buckets)
                if delay <= 0:
                    for bucket, amount in buckets:
                        bucket.take(amount)
                    return
                await self._sleep(delay)
