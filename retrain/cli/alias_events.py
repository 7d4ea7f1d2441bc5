"""The `retrain.alias.changed` event of an alias moved from the command line.

A nightly or rollback flow emits it from its run (``tasks.registry.announce_alias_change``);
`retrain alias set` and `alias rollback` send the same event straight to the configured Prefect
API, so the shipped `retrain-alias-changed` automation alerts on manual changes too.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from retrain.config.redact import redact
from retrain.registry.registry import RegistryEvent

__all__ = ["announce_cli_alias_change"]

_SEND_ATTEMPTS = 2


def announce_cli_alias_change(event: RegistryEvent) -> str:
    """Send the event to the Prefect API of ``PREFECT_API_URL``; one line that says what happened.

    The alias has already moved when this runs, so a Prefect API that cannot take the event is
    reported, not raised: the registry's history holds the change either way.
    """
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return (
            "no Prefect API configured (PREFECT_API_URL): no retrain.alias.changed event sent, "
            "so no alias-change alert fires"
        )
    try:
        asyncio.run(_send(event))
    except Exception as exc:  # unreachable or refusing: the change itself stands
        detail = redact(
            f"{type(exc).__name__}: {exc}", PREFECT_API_KEY.value() or "", urlsplit(url).password or ""
        )
        return (
            f"warning: the Prefect API did not take the retrain.alias.changed event ({detail}); "
            "no alert fires"
        )
    return f"sent retrain.alias.changed for {event.alias} (event {event.seq}) to the Prefect API"


async def _send(event: RegistryEvent) -> None:
    from prefect.events.clients import get_events_client

    from tasks.registry import alias_changed_event

    clients_logger = logging.getLogger("prefect.events.clients")
    level = clients_logger.level
    clients_logger.setLevel(logging.ERROR)  # its "Unable to connect" warning would repeat ours
    try:
        async with get_events_client(reconnection_attempts=_SEND_ATTEMPTS) as client:
            await client.emit(alias_changed_event(event))
    finally:
        clients_logger.setLevel(level)
