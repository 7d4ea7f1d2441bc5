"""The training plan as a pure rule over what the bucket says (the reads are tested with the flow)."""

from __future__ import annotations

from retrain.curate.dataset import DatasetVersion
from retrain.promote.decision import Decision
from retrain.registry.records import ModelRecord
from retrain.train.plan import TrainingHistory, plan_training

VERSION = DatasetVersion("ds-2", (), 500, 450, 50, "h", "2026-11-02T00:00:00+00:00", "retrain-2026-11-02")
MODEL = ModelRecord(model_id="ft:x", provider="local", base_model="b")


def _decided(promote: bool) -> Decision:
    return Decision(
        dataset_version="ds-2",
        run_id="retrain-2026-11-02",
        job_id="ftjob-1",
        candidate=MODEL,
        production=MODEL,
        promote=promote,
        reason="r",
        candidate_score=0.5,
        production_score=0.25,
        report_markdown="",
    )


def test_no_curated_data_means_no_training() -> None:
    plan = plan_training(TrainingHistory(None), 100)
    assert (plan.version, plan.train, plan.decided) == (None, False, None)
    assert plan.reason.startswith("no curated data yet")


def test_a_decided_version_is_never_trained_again_and_an_unapplied_promotion_comes_back() -> None:
    rejected = plan_training(TrainingHistory(VERSION, _decided(False)), 100)
    assert not rejected.train and rejected.decided is None
    assert rejected.reason == "no new data: dataset version ds-2 was already rejected"
    applied = plan_training(TrainingHistory(VERSION, _decided(True)), 100)
    assert not applied.train and applied.decided is None and "already promoted" in applied.reason
    pending = plan_training(TrainingHistory(VERSION, _decided(True), promotion_pending=True), 100)
    assert not pending.train and pending.decided == _decided(True)


def test_too_few_new_examples_wait_for_the_next_night() -> None:
    plan = plan_training(TrainingHistory(VERSION, previous_examples=450), 100)
    assert not plan.train and plan.version == VERSION
    assert plan.reason.startswith("only 50 new example(s) since the last decision (minimum 100, ")


def test_enough_new_examples_train_the_newest_version() -> None:
    plan = plan_training(TrainingHistory(VERSION, previous_examples=400), 100)
    assert plan.train and plan.reason == "100 new example(s): training dataset version ds-2"
    assert plan_training(TrainingHistory(VERSION), 100).reason.startswith("500 new example(s)")
