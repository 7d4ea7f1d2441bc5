"""The Prefect task that warns, each night, of what stops soon (logic in retrain.registry.retirement)."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.events import emit_event

from retrain.registry.aliases import PRODUCTION
from retrain.registry.retirement import RetirementNotice, notices_for
from tasks.context import task_context
from tasks.retry import IO_TASK

__all__ = ["RETIREMENT_EVENT", "warn_of_retirement"]

RETIREMENT_EVENT = "retrain.retirement.near"


@task(name="warn-of-retirement", **IO_TASK)
def warn_of_retirement() -> list[RetirementNotice]:
    """Warn when production's base model retires, or the training backend stops taking jobs, within
    RETRAIN_RETIREMENT__WARN_DAYS, and send ``retrain.retirement.near`` for automations.

    The backend's own warning (OpenAI's wind-down) is logged where the night trains, before anything
    is uploaded; here only the event says it.
    """
    context = task_context()
    settings = context.settings
    production = context.registry.get(PRODUCTION)
    notices = notices_for(settings, production, datetime.now(UTC).date())
    logger = get_run_logger()
    for notice in notices:
        if notice.kind == "base_model":
            logger.warning(notice.line)
        emit_event(
            RETIREMENT_EVENT,
            resource={
                "prefect.resource.id": f"retrain.retirement.{notice.kind}.{notice.name}",
                "prefect.resource.name": notice.name,
            },
            payload={
                "kind": notice.kind,
                "subject": notice.subject,
                "on": notice.on.isoformat(),
                "days_left": notice.days_left,
                "source": notice.source,
                "message": notice.line,
            },
        )
    return notices
