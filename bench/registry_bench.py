"""Registry read latency: resolve `production` with 5,000 events in the log, on a moto server.

Run with ``.venv/bin/python -m bench.registry_bench`` (needs the dev dependencies). The log
is seeded through RegistryLog (create-only writes, a snapshot every 100 events, as the
Registry writes them), then a fresh Registry resolves cold and a CachedResolver warm.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from retrain.registry.log import RegistryLog
from retrain.registry.records import ModelRecord, RegistryEvent
from retrain.registry.registry import Registry
from retrain.registry.resolver import AliasReader, CachedResolver
from retrain.registry.state import RegistryState
from retrain.storage.object_store import ObjectStore
from tests.s3_servers import moto_server

__all__ = ["main", "seed"]

EVENTS = 5_000
SNAPSHOT_EVERY = 100
_ALIASES = ("candidate", "production", "candidate", "staging")


def seed(store: ObjectStore, events: int = EVENTS) -> RegistryState:
    """Write a registry log of nightly-style events; a new candidate model every other event."""
    state = RegistryState()
    start = datetime(2020, 1, 1, tzinfo=UTC)
    log = RegistryLog(store)
    batch: list[RegistryEvent] = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        for seq in range(1, events + 1):
            alias = _ALIASES[seq % len(_ALIASES)]
            night = start + timedelta(days=seq // 2)
            model = ModelRecord(
                model_id=f"ft:gpt-4o-mini:retrain:{night:%Y%m%d}",
                provider="local",
                base_model="gpt-4o-mini-2024-07-18",
                job_id=f"ftjob-{seq // 2}",
                dataset_version=f"{night:%Y-%m-%d}",
                scores={"main": 0.5 + (seq % 100) / 1000},
                created_at=night,
            )
            event = RegistryEvent(
                seq=seq,
                alias=alias,
                action="promote" if alias == "production" else "set",
                model=model,
                previous_model_id=state.current_model_id(alias),
                actor="bench",
                reason="seed",
                idempotency_key=f"promote:{seq}" if alias == "production" else None,
                at=night,
            )
            state.apply(event)
            batch.append(event)
            if seq % SNAPSHOT_EVERY == 0:
                list(pool.map(log.append, batch))
                batch.clear()
                log.write_snapshot(state)
        list(pool.map(log.append, batch))
    return state


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(samples) * 1e6:,.1f} µs, p95 {p95 * 1e6:,.1f} µs"


def _cold_resolves(
    make_reader: Callable[[], AliasReader | Registry], times: int, expected: str | None
) -> list[float]:
    """Seconds of each of ``times`` resolves of production, each through a new reader and resolver."""
    samples: list[float] = []
    for _ in range(times):
        began = time.perf_counter()
        model_id = CachedResolver(make_reader()).resolve("production").model_id
        samples.append(time.perf_counter() - began)
        assert model_id == expected
    return samples


def main() -> None:
    with moto_server() as settings:
        store = ObjectStore.from_settings(settings)
        began = time.perf_counter()
        expected = seed(store).current_model_id("production")
        print(f"seeded {EVENTS} events in {time.perf_counter() - began:.1f} s")
        snapshot = max(info.size for info in store.list("registry/snapshots/"))
        print(f"newest snapshot: {snapshot / 1e6:.2f} MB")

        heads = max(info.size for info in store.list("registry/heads/"))
        print(f"newest heads snapshot (read path): {heads / 1e3:.2f} KB")

        cold = _cold_resolves(lambda: AliasReader(store), 20, expected)
        print(f"cold resolve (serving path: LATEST hint carrying the heads + log probe): {_ms(cold)}")

        cold_registry = _cold_resolves(lambda: Registry(store), 20, expected)
        print(f"cold resolve (new Registry: LATEST hint + full snapshot + log probe): {_ms(cold_registry)}")

        tail = 99
        log = RegistryLog(store)
        state = log.replay()
        for offset in range(1, tail + 1):
            previous = state.current_model_id("candidate")
            event = RegistryEvent(
                seq=state.seq + 1,
                alias="candidate",
                action="set",
                model=ModelRecord(model_id=f"ft:tail-{offset}", provider="local", base_model="b"),
                previous_model_id=previous,
                actor="bench",
                reason="tail",
            )
            log.append(event)
            state.apply(event)
        worst = _cold_resolves(lambda: AliasReader(store, compact_after=None), 5, expected)
        print(
            f"cold resolve replaying {tail} events after the newest snapshot (no heads written): {_ms(worst)}"
        )
        began = time.perf_counter()
        CachedResolver(AliasReader(store)).resolve("production")
        print(
            f"the first reader that replays them writes heads: {(time.perf_counter() - began) * 1000:.1f} ms"
        )
        after = _cold_resolves(lambda: AliasReader(store), 20, expected)
        print(f"cold resolve after that (LATEST hint + probe): {_ms(after)}")

        resolver = CachedResolver(AliasReader(store), ttl_seconds=60)
        resolver.resolve("production")
        cached: list[float] = []
        for _ in range(10_000):
            began = time.perf_counter()
            resolver.resolve("production")
            cached.append(time.perf_counter() - began)
        print(f"cached resolve (within the TTL): {_ms(cached)}")

        registry = Registry(store)
        registry.state()
        began = time.perf_counter()
        registry.resolve("production")
        print(f"warm Registry.resolve (one GET probe): {(time.perf_counter() - began) * 1000:.2f} ms")

        began = time.perf_counter()
        replayed = RegistryLog(store).replay(from_snapshot=False)
        elapsed = time.perf_counter() - began
        print(f"full replay without snapshots ({state.seq:,} GETs, 16 threads): {elapsed:.2f} s")
        assert replayed.current_model_id("production") == expected


if __name__ == "__main__":
    main()
