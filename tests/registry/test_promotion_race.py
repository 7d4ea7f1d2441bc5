"""Race-safe promotion: production moves to a candidate only while it still points at the model the
candidate was compared with; otherwise the promotion is superseded, recorded so, and moves nothing.
The race is also run between separate processes, on localbucket (atomic create-only writes)."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from retrain.config.services import S3Settings
from retrain.curate.dataset import DatasetVersion
from retrain.exceptions import RegistryConflict
from retrain.promote.decision import Decision, load_decision, record_superseded, save_decision
from retrain.promote.promotion import apply_decision, promotion_key
from retrain.registry.records import ModelRecord
from retrain.registry.registry import Registry
from retrain.storage.layout import CURATED_LATEST_KEY, version_key
from retrain.storage.object_store import ObjectStore
from retrain.train.plan import plan_training, training_history
from tests.registry.conftest import record
from tests.s3_servers import localbucket_server


def _production(registry: Registry) -> str | None:
    current = registry.get("production")
    return current.model_id if current else None


def decision(candidate: str, production: ModelRecord, version: str = "ds-1") -> Decision:
    return Decision(
        dataset_version=version,
        run_id="retrain-2026-12-01",
        job_id="ftjob-1",
        candidate=record(candidate),
        production=production,
        promote=True,
        reason="gate passed",
        candidate_score=0.8,
        production_score=0.6,
        report_markdown="## Gate",
    )


def test_a_promotion_applies_while_production_is_the_model_it_was_compared_with(store: ObjectStore) -> None:
    registry = Registry(store)
    registry.set("production", record("ft:a"), actor="night-1", reason="first")
    promotion = apply_decision(registry, decision("ft:b", record("ft:a")), actor="night-2")
    assert promotion.moved and not promotion.superseded
    assert _production(registry) == "ft:b"


def test_production_moved_after_the_comparison_supersedes_the_promotion(store: ObjectStore) -> None:
    registry = Registry(store)
    registry.set("production", record("ft:a"), actor="night-1", reason="first")
    registry.set("production", record("ft:b"), actor="night-2", reason="second")
    pending = save_decision(store, decision("ft:c", record("ft:b"), "ds-3"))
    registry.rollback("production", actor="alice", reason="bad answers")  # while the night waits

    promotion = apply_decision(registry, pending, actor="night-3")
    assert promotion.superseded and not promotion.moved and promotion.event is None
    assert _production(registry) == "ft:a"  # the rollback stands
    assert "ft:c" not in [event.model.model_id for event in registry.history("production")]
    assert "superseded" in promotion.summary() and "ft:a" in promotion.summary()

    recorded = record_superseded(store, pending, "ft:a")
    assert load_decision(store, "ds-3") == recorded
    assert not recorded.promote and recorded.superseded_by == "ft:a"
    assert recorded.reason.startswith(
        "superseded: production moved to ft:a after ft:c was compared with ft:b"
    )
    version = DatasetVersion(
        "ds-3", (), 300, 270, 30, "0" * 64, "2026-12-01T00:00:00+00:00", "retrain-2026-12-01"
    )
    store.put_json(version_key("ds-3"), version.to_json())
    store.put_json(CURATED_LATEST_KEY, {"version_id": "ds-3"})
    history = training_history(store, registry)
    assert not history.promotion_pending  # no later night applies it
    assert "was already superseded" in plan_training(history, min_new_examples=1).reason


def test_a_first_promotion_is_superseded_when_production_was_set_meanwhile(store: ObjectStore) -> None:
    registry = Registry(store)
    base = record("base-1")  # production unset: the base model stood in for it
    registry.set("production", record("ft:manual"), actor="alice", reason="set by hand")
    promotion = apply_decision(registry, decision("ft:b", base), actor="night-1")
    assert promotion.superseded and _production(registry) == "ft:manual"


def test_a_rerun_after_the_promotion_was_applied_is_not_superseded(store: ObjectStore) -> None:
    registry = Registry(store)
    registry.set("production", record("ft:a"), actor="night-1", reason="first")
    applied = decision("ft:b", record("ft:a"))
    first = apply_decision(registry, applied, actor="night-2")
    again = apply_decision(registry, applied, actor="night-2")  # the same night, re-run after a crash
    assert not again.superseded and again.event == first.event
    assert promotion_key(applied) in registry.state().idempotency


ROUNDS = 20


def _round(bucket: S3Settings, round_number: int) -> S3Settings:
    return bucket.model_copy(update={"prefix": f"race-{round_number}"})


def _racer(bucket: S3Settings, role: str, barrier: Barrier) -> None:
    """One process, every round: a night applying its decision (compared with ft:b), or an operator
    rolling back; each round starts when the test and both racers reach the barrier."""
    for round_number in range(ROUNDS):
        registry = Registry(ObjectStore.from_settings(_round(bucket, round_number)))
        barrier.wait(timeout=60)  # the round's registry is ready
        if role != "rollback":
            apply_decision(registry, decision(f"ft:{role}", record("ft:b")), actor=role)
        else:
            with contextlib.suppress(RegistryConflict):  # the night moved it while it wrote: refused
                registry.rollback("production", actor="alice", reason="bad answers")
        barrier.wait(timeout=60)  # the round is over


@pytest.mark.slow
@pytest.mark.parametrize("rival", ["rollback", "night-d"])
def test_processes_racing_a_promotion_keep_one_linear_history(tmp_path: Path, rival: str) -> None:
    """A night promoting ft:night-c over ft:b races, in another process, an operator's rollback or
    a second night promoting ft:night-d over ft:b; 20 rounds, each on a fresh registry."""
    spawn = multiprocessing.get_context("spawn")
    outcomes: set[tuple[str, str]] = set()
    with localbucket_server(tmp_path / "s3") as bucket:
        barrier = spawn.Barrier(3)
        racers = [spawn.Process(target=_racer, args=(bucket, role, barrier)) for role in ("night-c", rival)]
        for racer in racers:
            racer.start()
        try:
            for round_number in range(ROUNDS):
                store = ObjectStore.from_settings(_round(bucket, round_number))
                registry = Registry(store)
                registry.set("production", record("ft:a"), actor="night-1", reason="first")
                registry.set("production", record("ft:b"), actor="night-2", reason="second")
                barrier.wait(timeout=60)
                barrier.wait(timeout=60)

                events = Registry(store).history("production")
                moves = [(event.action, event.model.model_id) for event in events[2:]]
                assert [event.seq for event in events] == list(range(1, len(events) + 1))  # no lost event
                for earlier, later in itertools.pairwise(events):  # one linear history
                    assert later.previous_model_id == earlier.model.model_id, f"round {round_number}: {moves}"
                # Exactly one writer moves production from ft:b: the rollback (the night's promotion is
                # then superseded) or the night (the rollback is then refused), or one of the two nights.
                # A rollback that starts only after the night's promotion is written reads it and rolls
                # that promotion back (to ft:b), as `retrain alias rollback` run then would: still one
                # move from ft:b, and the second made on the state its writer read.
                if rival == "rollback":
                    outcomes_allowed = [
                        [("promote", "ft:night-c")],
                        [("rollback", "ft:a")],
                        [("promote", "ft:night-c"), ("rollback", "ft:b")],
                    ]
                else:
                    outcomes_allowed = [[("promote", "ft:night-c")], [("promote", "ft:night-d")]]
                assert moves in outcomes_allowed, f"round {round_number}: {moves}"
                outcomes.add(moves[0])
        finally:
            for racer in racers:
                racer.join(timeout=60)
                if racer.exitcode is None:
                    racer.kill()
    assert [racer.exitcode for racer in racers] == [0, 0], "a racer failed"
    print(f"winners over {ROUNDS} rounds against {rival}: {sorted(outcomes)}")
