"""`retrain serve`: the flows of deployments/prefect.yaml with their schedules, from one process.

For a single box without a work pool: one long-running process creates the deployments
`nightly-retrain/nightly` (cron and time zone from ``RETRAIN_ORCHESTRATION__CRON`` /
``__TIMEZONE``), `nightly-retrain/retrain-now`, `rollback/rollback`, `evaluate/evaluate` and
`train-lora/train-lora` on the Prefect server in ``PREFECT_API_URL`` and runs their flow runs
itself. Like the YAML, each deployment runs one flow run at a time and a second one is cancelled
(CANCEL_NEW).
Prefect is imported inside the functions (it is slow to import).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from retrain.cli.output import plain_console
from retrain.cli.prefect_api import require_prefect_api
from retrain.config.settings import Settings, get_settings
from retrain.providers.clients import wind_down_notice
from retrain.storage.object_store import ObjectStore

__all__ = ["build_deployments", "register", "serve"]

console = plain_console()


def build_deployments(settings: Settings) -> list[Any]:
    """The five deployments of deployments/prefect.yaml as Prefect RunnerDeployments."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.evaluate import evaluate
    from flows.nightly import nightly_retrain
    from flows.rollback import rollback
    from flows.train_lora import train_lora

    orchestration = settings.orchestration
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    return [
        nightly_retrain.to_deployment(
            name="nightly",
            schedule=Cron(orchestration.cron, timezone=orchestration.timezone),
            parameters={"night": None},
            tags=["retrain", "nightly", "scheduled", "served"],
            description=f"Every night ({orchestration.cron}, {orchestration.timezone}), by `retrain serve`.",
            concurrency_limit=one_at_a_time,
        ),
        nightly_retrain.to_deployment(
            name="retrain-now",
            parameters={"night": None},
            tags=["retrain", "nightly", "manual", "served"],
            description="The nightly flow on demand; pass `night` to re-run a past night.",
            concurrency_limit=one_at_a_time,
        ),
        rollback.to_deployment(
            name="rollback",
            parameters={"alias": "production", "steps": 1},
            tags=["retrain", "registry", "manual", "served"],
            description="Move an alias back to an earlier model and record why.",
            concurrency_limit=one_at_a_time,
        ),
        evaluate.to_deployment(
            name="evaluate",
            parameters={"eval_set": "main"},
            tags=["retrain", "evaluation", "manual", "served"],
            description="Compare two models on a held-out eval set.",
            concurrency_limit=one_at_a_time,
        ),
        train_lora.to_deployment(
            name="train-lora",
            tags=["retrain", "training", "lora", "served"],
            description="LoRA fine-tuning of one dataset version, started by the nightly flow.",
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            ),
        ),
    ]


def serve(
    limit: Annotated[int, typer.Option(min=1, help="Flow runs this process executes at the same time.")] = 1,
) -> None:
    """Serve the nightly (on its schedule), retrain-now, rollback, evaluate and train-lora flows."""
    settings = get_settings()
    ObjectStore.from_settings(settings.s3).check_bucket()  # fail now, not in every night's log
    notice = wind_down_notice(settings.provider, datetime.now(UTC).date())
    if notice:
        console.print(f"warning: {notice}", highlight=False, soft_wrap=True)
    require_prefect_api()
    import prefect

    deployments = build_deployments(settings)
    console.print(
        f"Serving {len(deployments)} deployments; nightly at `{settings.orchestration.cron}` "
        f"({settings.orchestration.timezone}). Stop with Ctrl+C.",
        highlight=False,
    )
    prefect.serve(*deployments, limit=limit)


def register(root: typer.Typer) -> None:
    root.command("serve")(serve)
