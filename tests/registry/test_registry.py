"""The registry over every S3 backend: aliases, history, idempotency, rollback, snapshots."""

from __future__ import annotations

import threading

import pytest

from retrain.exceptions import RegistryConflict, RegistryError, UnknownAlias, UnknownModel
from retrain.registry.log import RegistryLog
from retrain.registry.registry import ModelRecord, Registry, RegistryEvent
from retrain.storage.layout import REGISTRY_LATEST_KEY as LATEST_KEY
from retrain.storage.layout import REGISTRY_LOG_PREFIX as LOG_PREFIX
from retrain.storage.layout import SNAPSHOT_PREFIX, event_key, heads_key, snapshot_key
from retrain.storage.object_store import ObjectStore
from tests.registry.conftest import record


def log_keys(store: ObjectStore) -> list[str]:
    return [info.key for info in store.list(LOG_PREFIX)]


def test_set_resolve_and_history(store: ObjectStore) -> None:
    registry = Registry(store)
    first = registry.set("production", record("ft:a", scores={"main": 0.5}), actor="alice", reason="first")
    registry.set("staging", record("ft:c"), actor="bob", reason="try c")
    second = registry.set(
        "production", record("ft:b"), actor="nightly", reason="better", action="promote", run_id="run-7"
    )

    assert registry.resolve("production").model_id == "ft:b"
    assert registry.get("staging") == record("ft:c").model_copy(
        update={"created_at": registry.resolve("staging").created_at}
    )
    assert registry.get("nope") is None
    assert list(registry.aliases()) == ["production", "staging"]
    history = registry.history("production")
    assert [(e.seq, e.model.model_id, e.previous_model_id, e.action) for e in history] == [
        (1, "ft:a", None, "set"),
        (3, "ft:b", "ft:a", "promote"),
    ]
    assert history == [first, second]
    assert history[0].model.scores == {"main": 0.5}
    assert log_keys(store) == [event_key(1), event_key(2), event_key(3)]

    fresh = Registry(store)
    assert fresh.history("production") == history
    assert RegistryEvent.model_validate_json(second.model_dump_json()) == second


def test_idempotency_key_and_same_model_write_nothing(store: ObjectStore) -> None:
    registry = Registry(store)
    event = registry.set("production", record("ft:a"), actor="a", reason="r", idempotency_key="promote:run-1")
    again = Registry(store).set(
        "production", record("ft:b"), actor="a", reason="r", idempotency_key="promote:run-1"
    )
    same = Registry(store).set("production", record("ft:a"), actor="someone", reason="again")

    assert again == event
    assert same == event
    assert log_keys(store) == [event_key(1)]
    assert registry.resolve("production").model_id == "ft:a"


def test_rollback_by_steps_goes_further_back_each_time(store: ObjectStore) -> None:
    registry = Registry(store)
    for model_id in ("ft:a", "ft:b", "ft:c"):
        registry.set("production", record(model_id), actor="nightly", reason="promote")

    first = registry.rollback("production", actor="oncall", reason="c is bad")
    assert (first.model.model_id, first.previous_model_id, first.action) == ("ft:b", "ft:c", "rollback")
    second = Registry(store).rollback("production", actor="oncall")
    assert second.model.model_id == "ft:a"
    with pytest.raises(UnknownModel, match="no earlier model"):
        registry.rollback("production", actor="oncall")


def test_rollback_steps_and_to(store: ObjectStore) -> None:
    registry = Registry(store)
    for model_id in ("ft:a", "ft:b", "ft:c", "ft:d"):
        registry.set("production", record(model_id), actor="nightly", reason="promote")
    registry.set("staging", record("ft:s"), actor="dev", reason="try")

    assert registry.rollback("production", steps=2, actor="oncall").model.model_id == "ft:b"
    assert registry.rollback("production", to="ft:d", actor="oncall").model.model_id == "ft:d"
    assert registry.rollback("production", to="ft:s", actor="oncall").model.model_id == "ft:s"
    assert registry.state().rollback_candidates("production") == [
        "ft:c",
        "ft:a",
    ]  # b and d were rolled away from
    with pytest.raises(UnknownModel, match=r"--steps 9 is out of range: use 1\.\.2"):
        registry.rollback("production", steps=9, actor="oncall")
    with pytest.raises(
        UnknownModel, match=r"model 'ft:zzz' is not in the registry.*alias history production"
    ):
        registry.rollback("production", to="ft:zzz", actor="oncall")
    assert [e.model.model_id for e in registry.history("production")] == [
        "ft:a",
        "ft:b",
        "ft:c",
        "ft:d",
        "ft:b",
        "ft:d",
        "ft:s",
    ]


def test_unknown_alias_lists_known_aliases(store: ObjectStore) -> None:
    registry = Registry(store)
    with pytest.raises(UnknownAlias, match=r"known aliases: none yet"):
        registry.resolve("production")
    registry.set("staging", record("ft:a"), actor="a", reason="r")
    registry.set("canary", record("ft:a"), actor="a", reason="r")
    with pytest.raises(UnknownAlias) as info:
        registry.resolve("production")
    message = str(info.value)
    assert "\n" not in message
    assert "known aliases: canary, staging" in message
    assert "retrain alias set production MODEL" in message
    with pytest.raises(UnknownAlias):
        registry.rollback("production", actor="a")
    with pytest.raises(RegistryError, match="invalid alias name"):
        registry.set("../etc", record("ft:a"), actor="a", reason="r")


def test_expected_current_guards_against_a_moved_alias(store: ObjectStore) -> None:
    registry = Registry(store)
    registry.set("production", record("ft:a"), actor="a", reason="r", expected_current=None)
    Registry(store).set("production", record("ft:b"), actor="b", reason="r")
    with pytest.raises(RegistryConflict, match="points to ft:b, not ft:a"):
        registry.set("production", record("ft:c"), actor="a", reason="r", expected_current="ft:a")
    assert registry.resolve("production").model_id == "ft:b"


def test_snapshots_match_full_replay_and_readers_start_from_the_newest(store: ObjectStore) -> None:
    registry = Registry(store, snapshot_every=5)
    for i in range(12):
        registry.set(
            f"alias-{i % 3}", record(f"ft:{i % 4}"), actor="a", reason=f"step {i}", idempotency_key=f"k{i}"
        )
    registry.rollback("alias-0", actor="oncall")

    assert [info.key for info in store.list(SNAPSHOT_PREFIX)] == [snapshot_key(5), snapshot_key(10)]
    log = RegistryLog(store)
    full = log.replay(from_snapshot=False)
    assert full.seq == 13
    assert Registry(store).state().to_snapshot() == full.to_snapshot()
    assert log.replay().to_snapshot() == full.to_snapshot()

    store.delete(event_key(3))  # a reader that started from the snapshot never needs event 3
    assert Registry(store).state().to_snapshot() == full.to_snapshot()
    assert log.replay(from_snapshot=False).seq == 2


def test_two_snapshot_writers_race_and_agree(store: ObjectStore) -> None:
    writer = Registry(store, snapshot_every=1000)
    for i in range(7):
        writer.set("production", record(f"ft:{i}"), actor="a", reason="r")
    states = [Registry(store).state(), Registry(store).state()]
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def write(index: int) -> None:
        barrier.wait()
        results.append(RegistryLog(store).write_snapshot(states[index]))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False, True]
    replay = RegistryLog(store).replay(from_snapshot=False)
    assert store.get_json(snapshot_key(7)) == replay.to_snapshot()
    assert store.get_json(heads_key(7)) == replay.heads().to_snapshot()
    assert store.get_json(LATEST_KEY)["seq"] == 7
    assert RegistryLog(store).latest_heads().seq == 7


def test_model_record_round_trips_and_has_no_secret_fields() -> None:
    model = record("ft:a", job_id="ftjob-1", dataset_version="2026-11-25", eval_run="ev-1", scores={"m": 0.9})
    assert ModelRecord.model_validate_json(model.model_dump_json()) == model
    assert not {"key", "secret", "token", "password"} & {
        part for name in ModelRecord.model_fields for part in name.split("_")
    }
    with pytest.raises(ValueError, match="api_key"):
        ModelRecord.model_validate({**model.model_dump(), "api_key": "sk-x"})


def test_steps_past_the_lineage_name_the_models_to_can_still_reach(store: ObjectStore) -> None:
    """After promote a, promote b, roll back to a (as the demo ends), b is in the history but no
    step reaches it: the error says so and names it for --to, instead of "no earlier model"."""
    registry = Registry(store)
    for model_id in ("ft:a", "ft:b"):
        registry.set("production", record(model_id), actor="nightly", reason="promote")
    registry.rollback("production", actor="oncall")
    with pytest.raises(UnknownModel) as steps_99:
        registry.rollback("production", steps=99, actor="oncall")
    assert str(steps_99.value) == (
        "alias 'production' has no earlier model to roll back to by steps (a rollback never undoes "
        "itself): use --to MODEL with one of the others in its history: ft:b"
    )
    registry.set("production", record("ft:c"), actor="nightly", reason="promote")
    with pytest.raises(
        UnknownModel,
        match=r"\(ft:a\), so --steps 99 is out of range: use 1\.\.1 or --to MODEL "
        r"\(or one of the others in its history: ft:b\)",
    ):
        registry.rollback("production", steps=99, actor="oncall")
    only = Registry(store)
    only.set("staging", record("ft:s"), actor="dev", reason="try")
    with pytest.raises(UnknownModel, match="has pointed to no other model"):
        only.rollback("staging", steps=1, actor="oncall")
