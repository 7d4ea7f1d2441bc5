"""Writers racing for the log, on localbucket: its create-only write is atomic (moto checks, then writes)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import pytest

from retrain.exceptions import RegistryConflict
from retrain.registry.log import RegistryLog
from retrain.registry.registry import Registry, RegistryEvent
from retrain.storage.layout import REGISTRY_LOG_PREFIX as LOG_PREFIX
from retrain.storage.layout import event_key
from retrain.storage.object_store import ObjectStore
from tests.registry.conftest import record

pytestmark = pytest.mark.slow


def run_together(workers: list[Callable[[], None]]) -> list[BaseException]:
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_racing_writers_lose_no_event(localbucket_store: ObjectStore) -> None:
    writers, per_writer = 4, 6
    returned: list[RegistryEvent] = []

    def writer(index: int) -> Callable[[], None]:
        def work() -> None:
            registry = Registry(localbucket_store, snapshot_every=5)
            for n in range(per_writer):
                event = registry.set(
                    "production", record(f"ft:w{index}-{n}"), actor=f"w{index}", reason=f"{n}"
                )
                returned.append(event)

        return work

    assert run_together([writer(i) for i in range(writers)]) == []

    total = writers * per_writer
    assert [info.key for info in localbucket_store.list(LOG_PREFIX)] == [
        event_key(s) for s in range(1, total + 1)
    ]
    log = RegistryLog(localbucket_store)
    events = log.read_events(list(range(1, total + 1)))
    assert sorted(e.model.model_id for e in events) == sorted(
        f"ft:w{i}-{n}" for i in range(writers) for n in range(per_writer)
    )
    assert sorted(returned, key=lambda e: e.seq) == events
    for before, after in itertools.pairwise(events):
        assert after.previous_model_id == before.model.model_id
    state = log.replay(from_snapshot=False)
    assert state.current_model_id("production") == events[-1].model.model_id
    assert Registry(localbucket_store).state().to_snapshot() == state.to_snapshot()


def test_racing_writers_with_expected_current_one_wins(localbucket_store: ObjectStore) -> None:
    Registry(localbucket_store).set("production", record("ft:base"), actor="a", reason="r")
    winners: list[RegistryEvent] = []

    def writer(index: int) -> Callable[[], None]:
        def work() -> None:
            registry = Registry(localbucket_store)
            registry.state()
            event = registry.set(
                "production", record(f"ft:{index}"), actor="a", reason="r", expected_current="ft:base"
            )
            winners.append(event)

        return work

    errors = run_together([writer(i) for i in range(4)])

    assert len(winners) == 1
    assert len(errors) == 3
    assert all(isinstance(error, RegistryConflict) for error in errors)
    assert Registry(localbucket_store).resolve("production") == winners[0].model
    assert [info.key for info in localbucket_store.list(LOG_PREFIX)] == [event_key(1), event_key(2)]
