"""Roll an alias back to an earlier model from Prefect (what `retrain alias rollback` does)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from retrain.registry.aliases import PRODUCTION
from tasks.registry import publish_alias_change, read_alias, rollback_alias
from tasks.serving import serve_models

__all__ = ["rollback"]


@flow(name="rollback")
def rollback(
    alias: str = PRODUCTION,
    to_model: str | None = None,
    steps: int = 1,
    reason: str = "rollback from Prefect",
) -> dict[str, Any]:
    """Point the alias to `to_model`, or to the model `steps` distinct models back."""
    before = read_alias(alias)
    event = rollback_alias(
        alias,
        to_model=to_model,
        steps=steps,
        reason=reason,
        idempotency_key=f"rollback:{flow_run.id}",
    )
    # The rolled-back-to adapter, if it has one and was unloaded; its Azure deployment, if it was deleted.
    serve_models([event.model], production=True)
    publish_alias_change(before, event)
    get_run_logger().info("%s now points to %s", alias, event.model.model_id)
    return {
        "alias": alias,
        "before": before.model_id if before else None,
        "after": event.model.model_id,
        "seq": event.seq,
        "action": event.action,
    }
