"""`retrain ingest [--reconcile] [--dry-run]` against a moto server."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from typer.testing import CliRunner

from retrain.cli.main import app as root
from retrain.config.services import S3Settings
from retrain.evaluate.eval_sets import put_eval_set
from retrain.ingest.discovery import read_watermark
from retrain.ingest.lease import NIGHTLY, Holder, acquire, release
from retrain.local.synthetic import make_eval_set, make_examples
from retrain.storage.layout import lease_prefix
from retrain.storage.object_store import ObjectStore

pytestmark = pytest.mark.slow


@pytest.fixture
def store(s3_env: S3Settings, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    monkeypatch.setenv("COLUMNS", "200")
    store = ObjectStore.from_settings(s3_env)
    put_eval_set(store, "main", make_eval_set(20, seed=99))
    return store


def land(store: ObjectStore, key: str, seed: int) -> None:
    store.put_bytes(key, b"".join(orjson.dumps(ex) + b"\n" for ex in make_examples(30, seed=seed)))


def ingest(*args: str) -> str:
    result = CliRunner().invoke(root, ["ingest", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_ingest_then_reconcile_a_straggler(store: ObjectStore) -> None:
    for day in range(1, 8):
        land(store, f"incoming/2026-11-{day:02d}/app.jsonl", seed=day)
    out = ingest()
    assert "listed 7 key(s) (all of incoming/): 7 new object(s)" in out
    assert "watermark 2026-11-07" in out
    assert read_watermark(store) == "2026-11-07"

    land(store, "incoming/2026-11-02/late.jsonl", seed=50)
    assert "0 new object(s)" in ingest()
    dry = ingest("--reconcile", "--dry-run")
    assert "listed 8 key(s) (all of incoming/): 1 new object(s)" in dry
    assert "incoming/2026-11-02/late.jsonl" in dry
    assert "1 new object(s)" in ingest("--reconcile")
    assert "0 new object(s)" in ingest("--reconcile")


def test_ingest_waits_its_turn_while_a_night_holds_the_lease(store: ObjectStore) -> None:
    land(store, "incoming/2026-11-01/app.jsonl", seed=1)
    night = Holder("retrain-2026-11-01", "flow-1", "worker-b", 4242, "")
    lease = acquire(store, NIGHTLY, night, timedelta(minutes=15))
    refused = CliRunner().invoke(root, ["ingest"])
    assert refused.exit_code == 1
    assert (
        "error: another nightly run is in progress: retrain-2026-11-01 (worker-b, pid 4242" in refused.output
    )
    assert "Traceback" not in refused.output
    assert read_watermark(store) is None
    assert "1 new object(s)" in ingest("--dry-run")  # only looks: no lease needed

    release(store, lease)
    assert "watermark 2026-11-01" in ingest()
    newest = list(store.list(lease_prefix(NIGHTLY)))[-1]
    assert store.get_json(newest.key)["released_by"]["run_id"].startswith("ingest-")
