"""What a training run left, whichever backend ran it: the one shape the nightly flow, the
registry and the night summary read (nothing in it is particular to a provider's API)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrain.registry.records import ModelRecord

__all__ = ["LossPoint", "TrainingResult"]


@dataclass(frozen=True)
class LossPoint:
    step: int
    train_loss: float
    valid_loss: float | None = None


@dataclass(frozen=True)
class TrainingResult:
    """A training job as the wait left it, with the loss it reported step by step.

    ``status`` is ``succeeded`` once ``model_id`` can be evaluated; any other word (the backend's
    own) means it is still under way at the wait limit. ``provider`` is the configured provider
    that serves ``model_id``; ``artifact`` and ``content_hash`` name what the lora backend saved
    in the bucket (an adapter), empty for a model that lives on a provider.
    """

    job_id: str
    status: str
    base_model: str
    provider: str
    backend: str
    resumed: bool
    model_id: str | None = None
    loss: Sequence[LossPoint] = ()
    trained_tokens: int | None = None
    artifact: str | None = None
    content_hash: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded" and bool(self.model_id)

    def candidate(self, dataset_version: str) -> ModelRecord:
        """The registry record of the model this run made, trained on ``dataset_version``.

        ValueError if it has made no model (it has not succeeded).
        """
        if not self.succeeded or self.model_id is None:
            raise ValueError(f"training job {self.job_id} ({self.status}) has made no model")
        return ModelRecord(
            model_id=self.model_id,
            provider=self.provider,
            base_model=self.base_model,
            job_id=self.job_id,
            dataset_version=dataset_version,
            artifact=self.artifact,
            content_hash=self.content_hash,
        )
