"""Which fine-tuning events move the training progress bar, and what its log line says."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.fine_tuning import FineTuningJobEvent

from retrain.train.reports import training_progress


def event(kind: str, data: Any) -> FineTuningJobEvent:
    return FineTuningJobEvent(
        id="ftevent-1",
        created_at=0,
        level="info",
        message="Step 3/10: training loss=0.51",
        object="fine_tuning.job.event",
        type=kind,
        data=data,
    )


def test_a_metrics_event_with_its_total_is_a_step_of_the_total() -> None:
    data = {"step": 3, "total_steps": 10, "train_loss": 0.51234}
    assert training_progress(event("metrics", data)) == (3.0, 10.0, "step 3 of 10, training loss 0.5123")
    last = event("metrics", {"step": 10, "total_steps": 10})
    assert training_progress(last) == (10.0, 10.0, "step 10 of 10")


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("message", {"step": 3, "total_steps": 10}),  # only metrics events count
        ("metrics", {"step": 3, "train_loss": 0.5}),  # a provider that does not say the total
        ("metrics", {"step": 3, "total_steps": 0}),
        ("metrics", {"step": "3", "total_steps": 10}),
        ("metrics", None),
    ],
)
def test_other_events_do_not_move_it(kind: str, data: Any) -> None:
    assert training_progress(event(kind, data)) is None
