"""Prefect tasks that read and move model aliases (logic in retrain.registry.registry)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import Event, emit_event
from prefect.runtime import flow_run

from retrain.registry.aliases import CANDIDATE
from retrain.registry.registry import ModelRecord, RegistryEvent
from tasks.context import task_context
from tasks.retry import IO_TASK

__all__ = [
    "ALIAS_CHANGED_EVENT",
    "alias_changed_event",
    "announce_alias_change",
    "publish_alias_change",
    "read_alias",
    "register_candidate",
    "rollback_alias",
]

ALIAS_CHANGED_EVENT = "retrain.alias.changed"


def _actor() -> str:
    return f"prefect:{flow_run.flow_name or 'flow'}/{flow_run.name or flow_run.id or 'run'}"


def alias_changed_event(event: RegistryEvent) -> Event:
    """The Prefect event `retrain.alias.changed` (resource `retrain.alias.<name>`) of an alias move,
    as the shipped automations read it (the flows and the CLI send the same one)."""
    return Event(
        event=ALIAS_CHANGED_EVENT,
        resource={
            "prefect.resource.id": f"retrain.alias.{event.alias}",
            "prefect.resource.name": event.alias,
        },
        payload={
            "alias": event.alias,
            "action": event.action,
            "from_model": event.previous_model_id,
            "to_model": event.model.model_id,
            "provider": event.model.provider,
            "seq": event.seq,
            "actor": event.actor,
            "reason": event.reason,
        },
    )


def announce_alias_change(event: RegistryEvent) -> None:
    """Emit `retrain.alias.changed` from a flow or task run, for automations."""
    changed = alias_changed_event(event)
    emit_event(changed.event, resource=dict(changed.resource), payload=changed.payload)


def _report(before: ModelRecord | None, event: RegistryEvent) -> None:
    logger = get_run_logger()
    if before is not None and before.model_id == event.model.model_id:
        logger.info("%s already points to %s; nothing written", event.alias, event.model.model_id)
        return
    logger.info(
        "%s: %s -> %s (%s, event %d)",
        event.alias,
        before.model_id if before else "-",
        event.model.model_id,
        event.action,
        event.seq,
    )
    announce_alias_change(event)


@task(name="read-alias", **IO_TASK)
def read_alias(alias: str) -> ModelRecord | None:
    return task_context().registry.get(alias)


@task(name="register-candidate", **IO_TASK)
def register_candidate(candidate: ModelRecord, dataset_version: str, run_id: str) -> ModelRecord:
    """Point `candidate` to the model the training run made (its record, with where it is served)."""
    context = task_context()
    before = context.registry.get(CANDIDATE)
    event = context.registry.set(
        CANDIDATE, candidate, actor=_actor(), reason=f"trained on {dataset_version}", run_id=run_id
    )
    _report(before, event)
    return candidate


@task(name="rollback-alias", **IO_TASK)
def rollback_alias(
    alias: str,
    *,
    to_model: str | None = None,
    steps: int = 1,
    reason: str,
    idempotency_key: str | None = None,
) -> RegistryEvent:
    registry = task_context().registry
    before = registry.get(alias)
    event = registry.rollback(
        alias,
        to=to_model,
        steps=steps,
        actor=_actor(),
        reason=reason,
        run_id=str(flow_run.id) if flow_run.id else None,
        idempotency_key=idempotency_key,
    )
    _report(before, event)
    return event


@task(name="publish-alias-change", cache_policy=NO_CACHE)
def publish_alias_change(before: ModelRecord | None, event: RegistryEvent) -> None:
    """The `alias-change` artifact: the alias before and after, and who moved it why."""
    after = event.model
    lines = [
        f"# Alias `{event.alias}`",
        "",
        "| | model | provider | base model |",
        "| --- | --- | --- | --- |",
        f"| before | `{before.model_id}` | {before.provider} | {before.base_model} |"
        if before
        else "| before | - | - | - |",
        f"| after | `{after.model_id}` | {after.provider} | {after.base_model} |",
        "",
        f"Event {event.seq} ({event.action}) by {event.actor}: {event.reason}",
    ]
    create_markdown_artifact(
        "\n".join(lines),
        key="alias-change",
        description=f"{event.alias}: {before.model_id if before else '-'} -> {after.model_id}",
    )
