"""A client-side rate limiter for asyncio: requests and tokens per minute, as token buckets.

Each bucket holds at most one second's worth of its budget, so requests are paced evenly
instead of bursting at the start of each minute (a burst is what trips a provider's limit).
Waiters are served first come, first served.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class _Bucket:
    def __init__(self, per_minute: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` (clamped to capacity) is available."""
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing / self.rate)

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
        self._requests = _Bucket(requests_per_minute, now) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute, now) if tokens_per_minute else None
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
