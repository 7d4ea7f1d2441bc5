"""`retrain lease show` and `retrain lease break` against a moto server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner, Result

from retrain.cli.main import app as root
from retrain.config.services import S3Settings
from retrain.ingest.lease import NIGHTLY, Holder, LeaseLost, acquire, current, renew
from retrain.storage.object_store import ObjectStore

pytestmark = pytest.mark.slow

TTL = timedelta(minutes=15)


@pytest.fixture
def store(s3_env: S3Settings, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    monkeypatch.setenv("COLUMNS", "200")
    return ObjectStore.from_settings(s3_env)


def lease(*args: str, answer: str = "") -> Result:
    return CliRunner().invoke(root, ["lease", *args], input=answer)


def test_show_and_break_the_lease_of_a_run_on_a_machine_that_vanished(store: ObjectStore) -> None:
    assert lease("show").output.strip() == "nightly lease: free"
    vanished = acquire(store, NIGHTLY, Holder("retrain-2026-11-26", "f-1", "worker-b", 4242, ""), TTL)
    shown = lease("show")
    assert shown.exit_code == 0
    assert (
        "nightly lease: held by retrain-2026-11-26 (worker-b, pid 4242, flow run f-1) until" in shown.output
    )
    assert "min left" in shown.output

    declined = lease("break", answer="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert current(store, NIGHTLY) == vanished

    broke = lease("break", answer="y\n")
    assert broke.exit_code == 0, broke.output
    assert "broke the nightly lease of retrain-2026-11-26: the next run takes it" in broke.output
    assert current(store, NIGHTLY) is None
    with pytest.raises(LeaseLost):  # were it alive after all, it would find out at its next renewal
        renew(store, vanished, TTL)
    assert "nothing to break" in lease("break", "--yes").output


def test_break_refuses_a_holder_still_running_on_this_machine(store: ObjectStore) -> None:
    me = acquire(store, NIGHTLY, Holder.this_process("retrain-2026-11-26"), TTL)
    refused = lease("break", "--yes")
    assert refused.exit_code == 1
    assert f"is still running on this machine: stop it (kill {me.holder.pid})" in refused.output
    assert "Traceback" not in refused.output
    assert current(store, NIGHTLY) == me


def test_a_missing_bucket_is_one_line(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrain.config.settings import get_settings

    monkeypatch.setenv("RETRAIN_S3__BUCKET", "no-such-bucket")
    get_settings.cache_clear()
    result = lease("show")
    assert result.exit_code == 1 and "no-such-bucket" in result.output
    assert len(result.output.strip().splitlines()) == 1
