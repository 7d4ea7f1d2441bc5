"""API keys kept in a Prefect Secret block, for the commands that call a provider themselves.

Flows read the block in their tasks (``tasks.credentials.provider_with_credentials``); `retrain
jobs`, `retrain eval` and `retrain chat` run outside a flow and read it here, the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from retrain.cli.prefect_api import require_prefect_api
from retrain.config.services import ProviderSettings

if TYPE_CHECKING:
    from prefect.events.worker import EventsWorker

__all__ = ["with_credentials"]


def with_credentials(provider: ProviderSettings) -> ProviderSettings:
    """The provider with its API key read from its Secret block, if it names one."""
    if not provider.api_key_secret_block:
        return provider
    require_prefect_api()
    from prefect.events.worker import EventsWorker

    from tasks.credentials import provider_with_credentials

    try:
        return provider_with_credentials(provider)
    finally:
        _send_queued_events(EventsWorker)


def _send_queued_events(worker: type[EventsWorker]) -> None:
    """Loading a block queues a "block loaded" event. Send it now, before the command prints:
    stopping the worker with the event still queued logs "Still processing items: 1 items
    remaining..." on the command's stderr (Prefect's logger named after the worker class), which
    would come before the command's own one-line error. That notice is all it says here."""
    quiet = logging.getLogger(worker.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        worker.drain_all(timeout=10, at_exit=False)
    finally:
        quiet.setLevel(level)
