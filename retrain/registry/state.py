"""The registry's current state, derived from its event log by replaying events in order.

The state is what a snapshot holds: the current event of every alias, every model ever
recorded, each alias's rollback lineage and the idempotency keys already used. Replaying
the same events always yields the same state, so two writers producing the snapshot for
the same sequence number produce identical bytes.

Lineage: per alias, the distinct models it pointed to, oldest first, the current one last.
Moving the alias to a model moves that model to the end; a rollback also drops the model
it rolled away from, so rolling back twice goes further back instead of undoing the first
rollback.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from retrain.registry.records import ModelRecord, RegistryEvent

__all__ = ["AliasHeads", "RegistryState"]


class AliasHeads(BaseModel):
    """The read path's state: each alias's current event, and nothing else.

    What a serving app needs to resolve an alias; its size grows with the number of
    aliases, not with the number of models or events.
    """

    seq: int = Field(default=0, ge=0, description="The last event applied (0: none).")
    aliases: dict[str, RegistryEvent] = Field(default_factory=dict)

    def apply(self, event: RegistryEvent) -> None:
        if event.seq != self.seq + 1:
            raise ValueError(f"event {event.seq} applied to state at {self.seq}: the log has a gap")
        self.seq = event.seq
        self.aliases[event.alias] = event

    def to_snapshot(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["aliases"] = dict(sorted(data["aliases"].items()))
        return data


class RegistryState(BaseModel):
    seq: int = Field(default=0, ge=0, description="The last event applied (0: none).")
    aliases: dict[str, RegistryEvent] = Field(default_factory=dict)
    models: dict[str, ModelRecord] = Field(default_factory=dict)
    lineage: dict[str, list[str]] = Field(default_factory=dict)
    idempotency: dict[str, int] = Field(default_factory=dict)

    def apply(self, event: RegistryEvent) -> None:
        """Advance the state by the next event of the log."""
        if event.seq != self.seq + 1:
            raise ValueError(f"event {event.seq} applied to state at {self.seq}: the log has a gap")
        self.seq = event.seq
        self.aliases[event.alias] = event
        self.models[event.model.model_id] = event.model
        lineage = self.lineage.setdefault(event.alias, [])
        dropped = {event.model.model_id}
        if event.action == "rollback" and event.previous_model_id:
            dropped.add(event.previous_model_id)
        lineage[:] = [model_id for model_id in lineage if model_id not in dropped]
        lineage.append(event.model.model_id)
        if event.idempotency_key:
            self.idempotency.setdefault(event.idempotency_key, event.seq)

    def current_model_id(self, alias: str) -> str | None:
        event = self.aliases.get(alias)
        return event.model.model_id if event else None

    def rollback_candidates(self, alias: str) -> list[str]:
        """Models the alias can roll back to, most recent first."""
        return list(reversed(self.lineage.get(alias, [])[:-1]))

    def heads(self) -> AliasHeads:
        """Only the aliases' current events (the read-path snapshot)."""
        return AliasHeads(seq=self.seq, aliases=dict(self.aliases))

    def to_snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready data with sorted keys, identical for identical logs."""
        data = self.model_dump(mode="json")
        for name in ("aliases", "models", "lineage", "idempotency"):
            data[name] = dict(sorted(data[name].items()))
        return data
