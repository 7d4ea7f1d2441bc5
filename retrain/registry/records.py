"""What the model registry stores: model records and the events that move aliases.

Records name the provider by its configured name (``"local"``, ``"azure-eu"``), never by
anything secret: there is no field that could hold a credential.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

__all__ = ["ALIAS_PATTERN", "Action", "ModelRecord", "RegistryEvent"]

Action = Literal["set", "promote", "rollback"]
ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _now() -> datetime:
    return datetime.now(UTC)


class ModelRecord(BaseModel):
    """One trained (or base) model that an alias can point to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str = Field(min_length=1, description="The id the provider serves the model under.")
    provider: str = Field(min_length=1, description="The provider's configured name, never a credential.")
    base_model: str
    job_id: str | None = None
    dataset_version: str | None = None
    eval_run: str | None = None
    artifact: str | None = Field(
        default=None, description="Where the model's files are (the lora backend's adapter prefix, s3://...)."
    )
    content_hash: str | None = Field(default=None, description="sha256 of those files (their manifest).")
    deployment: str | None = Field(
        default=None,
        description="The Azure OpenAI deployment that serves the model (its chat requests' model).",
    )
    scores: dict[str, float] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=_now)

    @model_serializer(mode="wrap")
    def _without_empty_files(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A model without files (an API model) or deployment dumps as it did before ``artifact``
        and ``deployment`` existed, so stored records and decisions keep their exact JSON."""
        data: dict[str, Any] = handler(self)
        for key in _FILE_FIELDS:
            if data.get(key, "") is None:
                del data[key]
        return data


_FILE_FIELDS = ("artifact", "content_hash", "deployment")


class RegistryEvent(BaseModel):
    """One immutable entry of the registry log: an alias moved to a model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=1)
    alias: str = Field(pattern=ALIAS_PATTERN)
    action: Action
    model: ModelRecord
    previous_model_id: str | None
    actor: str
    reason: str
    run_id: str | None = None
    idempotency_key: str | None = None
    at: datetime = Field(default_factory=_now)
