"""Apply the Prefect automations in ``deployments/automations.yaml`` and their webhook block.

The file holds Prefect automation definitions plus the name of one notification block;
each ``send-notification`` action is pointed at that block when applied. Applying is
idempotent: the block is overwritten in place and each automation is matched by name,
updated if it exists and created otherwise.

This is the one module of ``retrain`` that talks to Prefect, and it imports Prefect only
inside ``apply_automations`` so that importing ``retrain`` never loads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

import yaml

from retrain.exceptions import ConfigError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore

__all__ = ["AppliedAutomation", "apply_automations", "read_automation_file"]

logger = logging.getLogger(__name__)

_SLACK_TEXT = {"text": "*{{subject}}*\n{{body}}"}


@dataclass(frozen=True)
class AutomationFile:
    notification_block: str
    automations: list[dict[str, Any]]


@dataclass(frozen=True)
class AppliedAutomation:
    name: str
    id: UUID
    outcome: Literal["created", "updated"]


def read_automation_file(path: Path) -> AutomationFile:
    """Parse and shape-check the automations file; raise ConfigError on anything unusable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read automations file {path}: {exc.strerror}; check the path") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"automations file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("notification_block"), str):
        raise ConfigError(f"automations file {path} needs a top-level 'notification_block' name")
    automations = data.get("automations")
    if not isinstance(automations, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in automations
    ):
        raise ConfigError(f"automations file {path} needs an 'automations' list of entries with a 'name'")
    names = [entry["name"] for entry in automations]
    if len(set(names)) != len(names):
        raise ConfigError(f"automations file {path} repeats a name; names must be unique: {names}")
    return AutomationFile(data["notification_block"], automations)


def apply_automations(path: Path, webhook_url: str) -> list[AppliedAutomation]:
    """Create or update the webhook block and every automation in ``path`` on the Prefect API."""
    if not webhook_url.startswith(("https://", "http://")):
        raise ConfigError("the webhook URL must start with https:// (or http:// for a local receiver)")
    spec = read_automation_file(path)

    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectException

    try:
        block_id = _save_webhook_block(spec.notification_block, webhook_url)
        with get_client(sync_client=True) as client:
            return [_upsert(client, _bind_block(entry, block_id, path)) for entry in spec.automations]
    except (PrefectException, OSError) as exc:
        raise ConfigError(
            f"cannot apply automations through the Prefect API ({type(exc).__name__}: {exc}); "
            "check that the server is up and PREFECT_API_URL points at it"
        ) from exc


def _save_webhook_block(name: str, webhook_url: str) -> UUID:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=name,
        url="{{webhook_url}}",
        json_data=_SLACK_TEXT,
        secrets={"webhook_url": webhook_url},
    )
    block_id: UUID = block.save(name, overwrite=True)  # type: ignore[assignment]
    logger.info("saved notification block %r", name)
    return block_id


def _bind_block(entry: dict[str, Any], block_id: UUID, path: Path) -> AutomationCore:
    from prefect.events.schemas.automations import AutomationCore
    from pydantic import ValidationError

    bound = {"block_document_id": str(block_id)}
    actions = [
        {**action, **bound} if action.get("type") == "send-notification" else action
        for action in entry.get("actions", [])
    ]
    try:
        return AutomationCore.model_validate({**entry, "actions": actions})
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ConfigError(
            f"automation {entry['name']!r} in {path} is invalid at {where}: {problem['msg']}"
        ) from exc


def _upsert(client: SyncPrefectClient, automation: AutomationCore) -> AppliedAutomation:
    existing = client.read_automations_by_name(automation.name)
    if not existing:
        created = client.create_automation(automation)
        logger.info("created automation %r", automation.name)
        return AppliedAutomation(automation.name, created, "created")
    keep, *duplicates = sorted(existing, key=lambda found: str(found.id))
    client.update_automation(keep.id, automation)
    for duplicate in duplicates:
        client.delete_automation(duplicate.id)
        logger.warning("deleted duplicate automation %r (%s)", automation.name, duplicate.id)
    logger.info("updated automation %r", automation.name)
    return AppliedAutomation(automation.name, keep.id, "updated")
