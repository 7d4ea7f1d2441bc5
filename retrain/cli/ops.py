"""`retrain automations ...`: operations on the Prefect server the deployments run on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from retrain.cli.prefect_api import require_prefect_api

__all__ = ["register"]

_console = Console()

automations_app = typer.Typer(
    no_args_is_help=True, help="Prefect automations: alerts on failures and alias moves."
)


@automations_app.command("apply")
def apply(
    webhook_url: Annotated[
        str,
        typer.Option(
            "--webhook-url",
            envvar="RETRAIN_ALERTS_WEBHOOK_URL",
            help="Slack-compatible incoming webhook (kept in the block's secrets, never printed).",
            show_envvar=True,
        ),
    ],
    file: Annotated[
        Path,
        typer.Option("--file", help="Automation definitions to apply."),
    ] = Path("deployments/automations.yaml"),
) -> None:
    """Create or update the `retrain-alerts` webhook block and every automation in the file."""
    from retrain.cli.automations import apply_automations

    require_prefect_api()
    for applied in apply_automations(file, webhook_url):
        _console.print(f"{applied.outcome:>8}  {escape(applied.name)}  [dim]{applied.id}[/]", highlight=False)


def register(root: typer.Typer) -> None:
    """Add the `automations` command group to the root CLI."""
    root.add_typer(automations_app, name="automations")
