"""Ingest at scale: 100,000 already-processed objects under incoming/, one night adds 100.

Run with ``.venv/bin/python -m bench.ingest_bench`` (needs the dev dependencies). A moto
server in this process; the 100,000 old objects (a year of date partitions) and their
processed index are seeded straight into moto's backend to save time, everything measured
goes through HTTP. Time in S3 calls is summed with botocore's own event hooks
(``before-call`` / ``after-call``), so it excludes validation and our own CPU work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from retrain.config.settings import Settings
from retrain.ingest.batches import ingest_objects
from retrain.ingest.discovery import discover
from retrain.local.synthetic import make_examples
from retrain.storage.layout import PROCESSED_PREFIX, WATERMARK_KEY, partition_of
from retrain.storage.object_store import ObjectStore, make_s3_client
from tests.s3_servers import moto_server

__all__ = ["S3Timer", "main"]

OLD_OBJECTS = 100_000
NEW_OBJECTS = 100
DAYS = 365


class S3Timer:
    """Count of S3 calls a boto3 client makes, and the wall time with at least one in flight.

    Calls made in parallel count once: this is the time the night spends waiting on S3.
    """

    def __init__(self, client: Any) -> None:
        self.seconds = 0.0
        self.calls: Counter[str] = Counter()
        self._in_flight = 0
        self._since = 0.0
        self._lock = threading.Lock()
        client.meta.events.register("before-call.s3.*", self._before)
        client.meta.events.register("after-call.s3.*", self._after)

    def _before(self, **_: object) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._since = time.perf_counter()
            self._in_flight += 1

    def _after(self, model: Any, **_: object) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.seconds += time.perf_counter() - self._since
            self.calls[model.name] += 1

    def reset(self) -> tuple[float, Counter[str]]:
        spent, calls = self.seconds, self.calls
        self.seconds, self.calls = 0.0, Counter()
        return spent, calls


def _seed(bucket: str, today: date) -> dict[str, dict[str, str]]:
    """100,000 small objects spread over a year of partitions, written into moto's backend."""
    from moto.s3.models import s3_backends

    backend = s3_backends["123456789012"]["aws"]
    body = orjson.dumps(make_examples(1, seed=0)[0]) + b"\n"
    index: dict[str, dict[str, str]] = {}
    for n in range(OLD_OBJECTS):
        day = today - timedelta(days=DAYS - (n * DAYS) // OLD_OBJECTS)
        key = f"incoming/{day.isoformat()}/producer-{n % 4}/part-{n:06d}.jsonl"
        stored = backend.put_object(bucket, key, body)
        index.setdefault(day.isoformat(), {})[key] = stored.etag.strip('"')
    return index


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    today = datetime.now(UTC).date()
    with moto_server() as s3:
        client = make_s3_client(s3)
        store = ObjectStore(client, s3.bucket)
        began = time.perf_counter()
        index = _seed(s3.bucket, today)
        for partition, entries in index.items():
            store.put_json(f"{PROCESSED_PREFIX}{partition}.json", entries)
        newest = max(index)
        store.put_json(WATERMARK_KEY, {"partition": newest})
        seeded = time.perf_counter() - began
        print(f"seeded {OLD_OBJECTS:,} processed objects in {len(index)} partitions in {seeded:.1f} s")

        for n in range(NEW_OBJECTS):
            examples = make_examples(5, seed=1000 + n)
            store.put_bytes(
                f"incoming/{today.isoformat()}/producer-{n % 4}/new-{n:03d}.jsonl",
                b"".join(orjson.dumps(example) + b"\n" for example in examples),
            )

        timer = S3Timer(client)
        assert not any(store.list("nothing-here/"))
        empty_list, _ = timer.reset()
        print(f"one LIST of an empty prefix: {empty_list:.3f} s (moto scans every key per LIST)")

        began = time.perf_counter()
        found = discover(store, overlap_days=2)
        wall = time.perf_counter() - began
        spent, calls = timer.reset()
        assert len(found.new) == NEW_OBJECTS, len(found.new)
        print(
            f"incremental discovery: {len(found.new)} new of {found.listed:,} keys listed "
            f"({found.partitions_read} partition indexes): {spent:.3f} s in {sum(calls.values())} S3 calls "
            f"{dict(calls)}, {wall:.3f} s wall"
        )

        began = time.perf_counter()
        report = ingest_objects(store, found.new, Settings(), run_id="bench-night")
        wall_ingest = time.perf_counter() - began
        spent_ingest, calls_ingest = timer.reset()
        assert report.lines_read == 5 * NEW_OBJECTS
        print(
            f"ingest of the {NEW_OBJECTS} new objects: {spent_ingest:.3f} s in {sum(calls_ingest.values())} "
            f"S3 calls {dict(calls_ingest)}, {wall_ingest:.3f} s wall (validation included)"
        )
        print(f"night total in S3 calls: {spent + spent_ingest:.3f} s")

        began = time.perf_counter()
        listed = sum(1 for _ in store.list("incoming/"))
        wall_full = time.perf_counter() - began
        spent_full, calls_full = timer.reset()
        print(
            f"full listing of incoming/ ({listed:,} keys): {spent_full:.3f} s in {sum(calls_full.values())} "
            f"S3 calls, {wall_full:.3f} s wall"
        )

        began = time.perf_counter()
        reconciled = discover(store, reconcile=True)
        wall_rec = time.perf_counter() - began
        spent_rec, calls_rec = timer.reset()
        assert reconciled.new == []
        print(
            f"full reconciliation ({reconciled.listed:,} keys, {reconciled.partitions_read} partition "
            f"indexes): {spent_rec:.3f} s in {sum(calls_rec.values())} S3 calls, {wall_rec:.3f} s wall"
        )
        legacy = orjson.dumps({k: v for entries in index.values() for k, v in entries.items()})
        print(f"(the former single processed index would be one {len(legacy) / 1e6:.1f} MB JSON object)")
        assert all(partition_of(info.key) == today.isoformat() for info in found.new)


if __name__ == "__main__":
    main()
