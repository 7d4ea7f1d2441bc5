"""The rate limiter's pacing, on a simulated clock (no timing assertions on the real one)."""

from __future__ import annotations

import asyncio

import pytest

from retrain.evaluate.rate_limit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def spend(limiter: RateLimiter, tokens: list[int]) -> None:
    async def main() -> None:
        for amount in tokens:
            await limiter.acquire(amount)

    asyncio.run(main())


def test_requests_per_minute_paces_evenly() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=120, clock=clock, sleep=clock.sleep)
    spend(limiter, [0] * 11)
    # no burst (a tenth of a second's worth is less than one request): one every 0.5 s
    assert clock.now == pytest.approx(5.0)
    assert all(s == pytest.approx(0.5) for s in clock.sleeps)


def test_a_stall_releases_at_most_a_tenth_of_a_second_of_requests_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=6000, clock=clock, sleep=clock.sleep)
    spend(limiter, [0] * 10)  # the bucket (10 requests, 0.1 s at 100/s) empties
    assert clock.now == pytest.approx(0.0)
    clock.now += 5.0  # the event loop was busy for 5 s: the bucket refills to 10, not 500
    spend(limiter, [0] * 30)
    assert clock.now == pytest.approx(5.2)


def test_tokens_per_minute_is_the_binding_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=6000, tokens_per_minute=6000, clock=clock, sleep=clock.sleep)
    spend(limiter, [100] * 5)
    # 100 tokens/s: the first request fits the one-second bucket, each other waits a second
    assert clock.now == pytest.approx(4.0)


def test_oversized_requests_and_no_limits_do_not_block_forever() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=60, clock=clock, sleep=clock.sleep)
    spend(limiter, [10_000, 10_000])
    assert clock.now == pytest.approx(1.0)
    unlimited = RateLimiter(clock=clock, sleep=clock.sleep)
    assert not unlimited.enabled
    spend(unlimited, [10**9] * 3)
    assert clock.now == pytest.approx(1.0)


def test_concurrent_waiters_share_the_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, clock=clock, sleep=clock.sleep)

    async def main() -> list[float]:
        done: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            done.append(clock.now)

        await asyncio.gather(*(one() for _ in range(4)))
        return done

    assert asyncio.run(main()) == pytest.approx([0.0, 1.0, 2.0, 3.0])
