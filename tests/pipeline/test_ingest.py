"""Ingestion across nights, on moto in-process: what is already curated is not curated twice."""

from __future__ import annotations

import orjson
import pytest

import retrain.ingest.batches
from retrain.config.settings import load_settings
from retrain.ingest.batches import ingest_objects
from retrain.ingest.discovery import find_new_objects
from retrain.local.synthetic import make_examples
from retrain.storage.object_store import ObjectStore


def _land(store: ObjectStore, key: str, examples: list[dict]) -> None:
    store.put_bytes(key, b"".join(orjson.dumps(ex) + b"\n" for ex in examples))


def test_exact_and_near_duplicates_of_curated_examples_are_quarantined(moto_store: ObjectStore) -> None:
    settings = load_settings()
    first = make_examples(40, seed=11)
    _land(moto_store, "incoming/2026-11-01/a.jsonl", first)
    night1 = ingest_objects(moto_store, find_new_objects(moto_store), settings, run_id="retrain-2026-11-01")
    assert night1.accepted + night1.quarantined == night1.lines_read == 40

    shouted = {"messages": [{**m, "content": m["content"].upper() + "!!"} for m in first[1]["messages"]]}
    _land(moto_store, "incoming/2026-11-02/b.jsonl", [first[0], shouted, *make_examples(30, seed=12)])
    night2 = ingest_objects(moto_store, find_new_objects(moto_store), settings, run_id="retrain-2026-11-02")

    assert night2.lines_read == 32 == night2.accepted + night2.quarantined
    assert night2.by_reason.get("duplicate", 0) >= 1
    assert night2.by_reason.get("near_duplicate", 0) >= 1
    assert find_new_objects(moto_store) == []


def test_progress_follows_the_bytes_read_up_to_every_byte_of_the_batch(
    moto_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        retrain.ingest.batches, "_WHOLE_OBJECT_BYTES", 1 << 20
    )  # stream the big one in chunks
    _land(moto_store, "incoming/2026-11-01/small.jsonl", make_examples(20, seed=1))
    _land(moto_store, "incoming/2026-11-01/big.jsonl", make_examples(8000, seed=2))
    objects = find_new_objects(moto_store)
    total = sum(info.size for info in objects)
    assert total > 2 << 20
    seen: list[tuple[int, int]] = []
    report = ingest_objects(
        moto_store, objects, load_settings(), run_id="r", progress=lambda done, of: seen.append((done, of))
    )
    assert report.lines_read == 8020
    assert len(seen) >= 4  # the small object, then the big one chunk by chunk
    assert {of for _, of in seen} == {total}
    assert [done for done, _ in seen] == sorted({done for done, _ in seen})  # only ever forward
    assert seen[-1] == (total, total)


def test_the_nightly_batch_skips_the_new_examples_gate_and_names_the_real_minimum(
    moto_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_VALIDATION__MIN_NEW_EXAMPLES", "10")
    _land(moto_store, "incoming/2026-11-01/a.jsonl", make_examples(4, seed=3))
    report = ingest_objects(moto_store, find_new_objects(moto_store), load_settings(), run_id="r")
    [gate] = [g for g in report.gates if g["name"] == "min_new_examples"]
    assert gate["skipped"] is True and gate["passed"] is True and gate["threshold"] == 10
    assert "at least 10, RETRAIN_VALIDATION__MIN_NEW_EXAMPLES" in gate["detail"]
    assert "at least 0" not in gate["detail"]
