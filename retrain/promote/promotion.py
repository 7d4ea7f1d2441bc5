"""Applying a decision: `production` moves to the candidate if the decision says so, once.

The move carries an idempotency key derived from the candidate (``promote:{model}``), so a re-run
after a crash, or after a rollback, never promotes the same candidate twice. Until the first
promotion `production` is unset and the base model stands in for it.

The move is conditional: `production` must still point at the model the candidate was compared
with (unset, when the base model stood in). If another writer moved it in between (a rollback
from the CLI while the night waited for approval, another night), the promotion is superseded:
nothing moves and the decision says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrain.config.settings import Settings
from retrain.exceptions import RegistryConflict
from retrain.promote.decision import Decision
from retrain.registry.aliases import PRODUCTION
from retrain.registry.records import ModelRecord, RegistryEvent
from retrain.registry.registry import Registry

__all__ = ["Promotion", "apply_decision", "production_or_base", "promotion_key"]


@dataclass(frozen=True)
class Promotion:
    """What applying a decision did to `production`: the model before and after, and the event."""

    decision: Decision
    before: ModelRecord | None
    after: ModelRecord | None
    event: RegistryEvent | None
    superseded: bool = False  # production had moved since the comparison: nothing was written

    @property
    def moved(self) -> bool:
        """Whether `production` points to another model than before."""
        return self.event is not None and self.before != self.after

    def summary(self) -> str:
        """One line for the log: where `production` went, or that it stays."""
        if self.superseded:
            return (
                f"{PRODUCTION} moved to {_model_id(self.after)} after {self.decision.candidate.model_id} "
                f"was compared with {self.decision.production.model_id}: the promotion is superseded "
                f"and nothing moved; compare again on the next night"
            )
        if self.moved:
            return f"{PRODUCTION}: {_model_id(self.before)} -> {_model_id(self.after)}"
        return f"{PRODUCTION} stays {self.before.model_id if self.before else 'unset (base model)'}"

    def to_markdown(self) -> str:
        """The ``promotion-decision`` artifact: the decision's report, then the alias before and after."""
        lines = [f"**Superseded**: {self.summary()}", ""] if self.superseded else []
        lines += [
            self.decision.report_markdown,
            "",
            f"## Alias `{PRODUCTION}`",
            "",
            "| | model |",
            "| --- | --- |",
            f"| before | `{_model_id(self.before)}` |",
            f"| after | `{_model_id(self.after)}` |",
        ]
        return "\n".join(lines)


def _model_id(record: ModelRecord | None) -> str:
    return record.model_id if record else "-"


def production_or_base(registry: Registry, settings: Settings) -> ModelRecord:
    """The model `production` points to; on the first night, the base model itself (for the lora
    backend, as its serving endpoint serves it: under the RETRAIN_LORA__BASE_MODEL name)."""
    current = registry.get(PRODUCTION)
    if current is not None:
        return current
    if settings.training.backend == "lora":
        lora = settings.lora
        return ModelRecord(
            model_id=lora.base_model, provider=lora.serving_provider, base_model=lora.base_model
        )
    return ModelRecord(
        model_id=settings.training.base_model,
        provider=settings.provider.name,
        base_model=settings.training.base_model,
    )


def promotion_key(decision: Decision) -> str:
    """The idempotency key of the decision's promotion: one per candidate model."""
    return f"promote:{decision.candidate.model_id}"


def apply_decision(registry: Registry, decision: Decision, *, actor: str) -> Promotion:
    """Move `production` to the candidate if the decision says so (idempotent per candidate), and
    only while it still points at the model the candidate was compared with."""
    before = registry.get(PRODUCTION)
    event: RegistryEvent | None = None
    if decision.promote:
        # Unset before: the base model stood in, and production must still be unset.
        expected = decision.production.model_id if before is not None else None
        try:
            event = registry.set(
                PRODUCTION,
                decision.candidate,
                actor=actor,
                reason=decision.reason,
                action="promote",
                run_id=decision.run_id,
                idempotency_key=promotion_key(decision),
                expected_current=expected,
            )
        except RegistryConflict:
            return Promotion(decision, before, registry.get(PRODUCTION), None, superseded=True)
    return Promotion(decision, before, registry.get(PRODUCTION), event)
