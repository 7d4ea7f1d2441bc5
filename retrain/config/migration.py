"""A migration night: production moves to a model trained on another backend if it is not worse.

``retrain migrate --to BACKEND [--model BASE] [--margin D]`` runs the nightly flow once with a
``Migration``: its settings overrides train on BACKEND (from BASE, if given) and decide in the
non-inferiority gate mode with margin D; its decision is recorded apart from the version's nightly
one (``decision_key``), so a version already decided on the old backend is trained again there.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BACKENDS", "Migration"]

Backend = Literal["openai_api", "lora", "together"]
BACKENDS: tuple[Backend, ...] = ("openai_api", "lora", "together")
_BASE_MODEL_GROUP = {"openai_api": "training", "lora": "lora", "together": "together"}


class Migration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    to: Backend = Field(description="The backend production moves to.")
    base_model: str | None = Field(default=None, description="The base model there; empty: its setting.")
    margin: float | None = Field(
        default=None, gt=0, lt=1, description="Non-inferiority margin; empty: RETRAIN_EVALUATION__MARGIN."
    )

    def overrides(self) -> dict[str, dict[str, Any]]:
        """The settings of the night (``overridden_settings``)."""
        evaluation: dict[str, Any] = {"gate_mode": "non_inferiority"}
        if self.margin is not None:
            evaluation["margin"] = self.margin
        groups: dict[str, dict[str, Any]] = {"training": {"backend": self.to}, "evaluation": evaluation}
        if self.base_model:
            group = _BASE_MODEL_GROUP[self.to]
            groups.setdefault(group, {})["base_model"] = self.base_model
        return groups

    @property
    def setting_to_keep(self) -> str:
        """What to set so that the next nights train on the new backend too."""
        names = [f"RETRAIN_TRAINING__BACKEND={self.to}"]
        if self.base_model:
            names.append(f"RETRAIN_{_BASE_MODEL_GROUP[self.to].upper()}__BASE_MODEL={self.base_model}")
        return " and ".join(names)
