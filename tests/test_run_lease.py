"""The nightly lease (retrain.ingest.lease): one holder at a time, taken over only when it lapsed,
was released or broken, or its holder is known to have stopped, and never held by two."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retrain.exceptions import RunInProgress, StorageUnavailable
from retrain.ingest.lease import Holder, LeaseLost, acquire, break_lease, current, held, release, renew
from retrain.storage.layout import lease_prefix
from retrain.storage.object_store import ObjectStore

TTL = timedelta(minutes=15)
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def elsewhere(run_id: str, host: str = "worker-b") -> Holder:
    """A holder on another machine: this host cannot tell whether it is alive."""
    return Holder(run_id, f"flow-{run_id}", host, 4242, "")


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def records(store: ObjectStore) -> list[str]:
    return [info.key for info in store.list(lease_prefix("nightly"))]


def test_a_second_run_is_refused_with_who_holds_the_lease_until_when(moto_store: ObjectStore) -> None:
    first = acquire(moto_store, "nightly", elsewhere("retrain-2026-11-26"), TTL, now=at(T0))
    assert first.seq == 1 and first.expires_at == T0 + TTL
    with pytest.raises(RunInProgress) as refused:
        acquire(moto_store, "nightly", elsewhere("retrain-2026-11-25", "laptop"), TTL, now=at(T0))
    message = str(refused.value)
    assert "retrain-2026-11-26 (worker-b, pid 4242, flow run flow-retrain-2026-11-26)" in message
    assert "until 2026-11-26 02:15:00 UTC" in message and "wait for it to finish" in message
    assert "\n" not in message


def test_a_released_or_lapsed_lease_can_be_taken(moto_store: ObjectStore) -> None:
    first = acquire(moto_store, "nightly", elsewhere("a"), TTL, now=at(T0))
    release(moto_store, first)
    second = acquire(moto_store, "nightly", elsewhere("b", "host-2"), TTL, now=at(T0))
    assert second.seq == 3
    with pytest.raises(RunInProgress):
        acquire(moto_store, "nightly", elsewhere("c", "host-3"), TTL, now=at(T0 + TTL - timedelta(seconds=1)))
    third = acquire(moto_store, "nightly", elsewhere("c", "host-3"), TTL, now=at(T0 + TTL))
    assert third.seq == 4 and third.holder.run_id == "c"
    assert records(moto_store) == [f"{lease_prefix('nightly')}{4:012d}.json"]  # older records deleted


def test_a_holder_whose_process_is_gone_is_taken_over_at_once(moto_store: ObjectStore) -> None:
    script = "import os; print(os.getpid())"
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    dead = replace(Holder.this_process("crashed"), pid=int(finished.stdout))
    acquire(moto_store, "nightly", dead, TTL, now=at(T0))
    again = acquire(moto_store, "nightly", Holder.this_process("re-run"), TTL, now=at(T0))
    assert again.holder.run_id == "re-run"


def test_a_record_from_another_version_of_retrain_still_names_its_holder(moto_store: ObjectStore) -> None:
    newer = {"run_id": "retrain-2026-11-26", "flow_run_id": None, "host": "worker-b", "pid": 7}
    newer |= {"process_start": "", "pid_namespace": "", "container": "abc"}
    record = {"holder": newer, "expires_at": (T0 + TTL).isoformat()}
    moto_store.put_json(f"{lease_prefix('nightly')}{1:012d}.json", record)
    with pytest.raises(RunInProgress, match=r"retrain-2026-11-26 \(worker-b, pid 7\)"):
        acquire(moto_store, "nightly", elsewhere("me"), TTL, now=at(T0))


def test_a_holder_the_caller_knows_has_stopped_is_taken_over_before_its_lease_lapses(
    moto_store: ObjectStore,
) -> None:
    acquire(moto_store, "nightly", elsewhere("crashed-pod"), TTL, now=at(T0))
    asked: list[str] = []

    def not_known(holder: Holder) -> str | None:
        asked.append(holder.run_id)
        return None

    with pytest.raises(RunInProgress, match="crashed-pod"):
        acquire(moto_store, "nightly", elsewhere("re-run"), TTL, now=at(T0), stopped=not_known)
    assert asked == ["crashed-pod"]
    lease = acquire(
        moto_store, "nightly", elsewhere("re-run"), TTL, now=at(T0), stopped=lambda _: "its flow run crashed"
    )
    assert lease.holder.run_id == "re-run" and lease.seq == 2


def test_current_names_the_holder_until_the_lease_is_released(moto_store: ObjectStore) -> None:
    assert current(moto_store, "nightly") is None
    lease = acquire(moto_store, "nightly", elsewhere("night"), TTL, now=at(T0))
    assert current(moto_store, "nightly") == lease
    lease = renew(moto_store, lease, TTL, now=at(T0 + timedelta(minutes=5)))
    assert current(moto_store, "nightly") == lease
    release(moto_store, lease)
    assert current(moto_store, "nightly") is None


def test_an_operator_breaks_a_dead_holders_lease_and_a_live_one_finds_out_at_its_renewal(
    moto_store: ObjectStore,
) -> None:
    seen = acquire(moto_store, "nightly", elsewhere("vanished"), TTL, now=at(T0))
    renewed = renew(moto_store, seen, TTL, now=at(T0 + timedelta(minutes=5)))  # after the operator looked
    break_lease(moto_store, seen, "cli:alice")
    assert current(moto_store, "nightly") is None
    newest = moto_store.get_json(records(moto_store)[-1])
    assert newest["broken_by"]["actor"] == "cli:alice" and newest["was"]["run_id"] == "vanished"
    with pytest.raises(LeaseLost, match="an operator broke it"):
        renew(moto_store, renewed, TTL, now=at(T0 + timedelta(minutes=10)))
    taker = acquire(moto_store, "nightly", elsewhere("next"), TTL, now=at(T0 + timedelta(minutes=10)))
    assert taker.holder.run_id == "next"

    with pytest.raises(RunInProgress, match=r"no longer held by vanished .* `retrain lease show`"):
        break_lease(moto_store, seen, "cli:alice")  # the lease changed hands since it was read
    assert current(moto_store, "nightly") == taker


def test_a_live_process_on_this_host_is_not_mistaken_for_gone() -> None:
    me = Holder.this_process("me")
    assert not me.is_gone() and me.runs_here()
    if me.process_start:  # Linux: a new process that reused the pid started at another time
        assert replace(me, process_start=str(int(me.process_start) - 1)).is_gone()
    assert not elsewhere("other").is_gone() and not elsewhere("other").runs_here()
    in_another_container = replace(me, pid=999_999_999, pid_namespace="pid:[1]")  # same host name
    assert not in_another_container.is_gone()
    assert replace(in_another_container, pid_namespace=me.pid_namespace).is_gone()
    assert not replace(in_another_container, pid_namespace=me.pid_namespace).runs_here()


def test_renewal_extends_the_lease_and_a_late_one_never_slips_under_a_newer_holder(
    moto_store: ObjectStore,
) -> None:
    lease = acquire(moto_store, "nightly", elsewhere("slow"), TTL, now=at(T0))
    for minutes in (5, 10, 15):
        lease = renew(moto_store, lease, TTL, now=at(T0 + timedelta(minutes=minutes)))
    assert lease.seq == 4 and lease.expires_at == T0 + timedelta(minutes=30)
    assert len(records(moto_store)) == 1

    # The holder stalls past its lease; another run takes over and renews twice.
    later = T0 + timedelta(minutes=31)
    taker = acquire(moto_store, "nightly", elsewhere("taker", "host-2"), TTL, now=at(later))
    taker = renew(moto_store, taker, TTL, now=at(later))
    taker = renew(moto_store, taker, TTL, now=at(later))
    with pytest.raises(LeaseLost, match=r"slow .* passed to another run: it lapsed, or an operator broke it"):
        renew(moto_store, lease, TTL, now=at(later))
    release(moto_store, lease)  # a no-op: the lease is the taker's
    with pytest.raises(RunInProgress, match="taker"):
        acquire(moto_store, "nightly", elsewhere("third", "host-3"), TTL, now=at(later))
    assert [info.key for info in moto_store.list(lease_prefix("nightly"))][-1].endswith(
        f"{taker.seq:012d}.json"
    )


@pytest.mark.slow
def test_of_many_runs_starting_at_once_exactly_one_gets_the_lease(localbucket_store: ObjectStore) -> None:
    start = threading.Barrier(12)
    won: list[str] = []
    refused: list[str] = []

    def start_a_run(index: int) -> None:
        start.wait()
        try:
            acquire(localbucket_store, "nightly", elsewhere(f"run-{index}", f"host-{index}"), TTL)
            won.append(f"run-{index}")
        except RunInProgress:
            refused.append(f"run-{index}")

    threads = [threading.Thread(target=start_a_run, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(refused) == 11


def test_held_renews_while_the_block_runs_and_releases_after(moto_store: ObjectStore) -> None:
    ttl = timedelta(seconds=0.6)
    lease = acquire(moto_store, "nightly", Holder.this_process("night"), ttl)
    with held(moto_store, lease, ttl):
        time.sleep(1.5)  # past the first expiry: only renewals keep it
        with pytest.raises(RunInProgress, match=f"pid {os.getpid()}"):
            acquire(moto_store, "nightly", elsewhere("other"), ttl)
    newest = moto_store.get_json(records(moto_store)[-1])
    assert newest["released_by"]["run_id"] == "night"
    assert acquire(moto_store, "nightly", elsewhere("other"), ttl).seq > lease.seq + 2


def test_confirm_renews_now_and_fails_for_good_once_the_lease_has_passed_on(moto_store: ObjectStore) -> None:
    lease = acquire(moto_store, "nightly", Holder.this_process("night"), TTL)
    with held(moto_store, lease, TTL) as keeper:  # TTL: the thread never renews during the test
        keeper.confirm()
        assert keeper.lease.seq == lease.seq + 1 and keeper.lease.expires_at > lease.expires_at
        seen = current(moto_store, "nightly")
        assert seen is not None
        break_lease(moto_store, seen, "cli:alice")
        for _ in range(2):  # the second time from what the first found, without asking S3
            with pytest.raises(LeaseLost, match="an operator broke it"):
                keeper.confirm()
    assert "broken_by" in moto_store.get_json(records(moto_store)[-1])  # not released over the break


def test_a_stale_writer_that_lands_below_a_newer_record_withdraws_and_loses(moto_store: ObjectStore) -> None:
    """Between run B's read of the newest record and its write, run A takes the lease and renews
    it, which deletes the record B is about to recreate: B must not end up holding the lease too."""
    first = acquire(moto_store, "nightly", elsewhere("old"), TTL, now=at(T0))
    release(moto_store, first)  # newest record: 2, released
    s3 = moto_store._client  # the same bucket, through a store that lets A in at the worst moment

    class RacedStore(ObjectStore):
        raced = False

        def put_json(self, key: str, value: Any, *, create_only: bool = False) -> str:
            if not self.raced:
                self.raced = True
                lease = acquire(moto_store, "nightly", elsewhere("a", "host-a"), TTL, now=at(T0))
                renew(moto_store, lease, TTL, now=at(T0))  # record 4; record 3 deleted
            return super().put_json(key, value, create_only=create_only)

    raced = RacedStore(s3, moto_store.bucket, moto_store.prefix)
    with pytest.raises(RunInProgress, match=r"^another nightly run is in progress: a \(host-a"):
        acquire(raced, "nightly", elsewhere("b", "host-b"), TTL, now=at(T0))
    assert [key.rsplit("/", 1)[1] for key in records(moto_store)] == [f"{4:012d}.json"]


class LosingStore(ObjectStore):
    """S3 applies the next lease write, but its answer is lost (as in the chaos soak)."""

    lose_next = False

    def put_bytes(self, key: str, data: bytes, **kwargs: Any) -> str:
        etag = super().put_bytes(key, data, **kwargs)
        if self.lose_next and key.startswith(lease_prefix("nightly")):
            self.lose_next = False
            raise StorageUnavailable(f"S3 request for {key} failed: connection closed")
        return etag


def test_a_lease_write_whose_answer_was_lost_is_recognised_as_ours(moto_store: ObjectStore) -> None:
    store = LosingStore(moto_store._client, moto_store.bucket, moto_store.prefix)
    me = Holder.this_process("night")
    store.lose_next = True
    with pytest.raises(StorageUnavailable):
        acquire(store, "nightly", me, TTL, now=at(T0))
    lease = acquire(store, "nightly", me, TTL, now=at(T0))  # the task's retry
    assert (lease.seq, lease.expires_at) == (1, T0 + TTL)
    with pytest.raises(RunInProgress, match="night"):
        acquire(store, "nightly", elsewhere("other"), TTL, now=at(T0))

    store.lose_next = True
    with pytest.raises(StorageUnavailable):
        renew(store, lease, TTL, now=at(T0 + timedelta(minutes=5)))
    lease = renew(store, lease, TTL, now=at(T0 + timedelta(minutes=10)))  # the next tick
    assert (lease.seq, lease.expires_at) == (3, T0 + timedelta(minutes=25))

    store.lose_next = True
    with held(store, lease, TTL):
        pass  # the release's answer is lost: the block still ends normally
    newest = store.get_json(records(store)[-1])
    assert newest["released_by"]["run_id"] == "night"
