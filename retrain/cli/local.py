"""``retrain local up | down | status``: the embedded local S3 and OpenAI-compatible servers,
and with ``--with-prefect`` a Prefect server (UI) and a process worker."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from retrain.config.settings import get_settings
from retrain.local import stack as local_stack
from retrain.local.stack import StackStatus

__all__ = ["app"]

app = typer.Typer(
    help="Run the local stack: an S3 server, an OpenAI-compatible fine-tuning server and optionally Prefect.",
    no_args_is_help=True,
)
console = Console()


def _show(stack: StackStatus) -> None:
    table = Table("service", "url", "state", "pid", "log")
    for service in stack.services:
        state = "[green]running[/]" if service.running else "[red]stopped[/]"
        table.add_row(service.name, service.url, state, str(service.pid or "-"), str(service.log))
    console.print(table)
    if stack.running:
        # Served by the local OpenAI server; the together backend's default provider.
        console.print(f"Together AI endpoint: {stack.together_url}", highlight=False, soft_wrap=True)
        console.print("Point retrain at it with:")
        for name, value in stack.env.items():
            console.print(f"  export {name}={value}", highlight=False, soft_wrap=True)
    prefect = next((service for service in stack.services if service.name == "prefect"), None)
    if prefect is not None and prefect.running:
        console.print(f"Prefect UI: {prefect.url}", highlight=False)
        console.print(
            "Run a night through the deployment: .venv/bin/retrain run --via-deployment "
            "(or: prefect deployment run nightly-retrain/retrain-now)",
            highlight=False,
        )


@app.command()
def up(
    with_prefect: Annotated[
        bool,
        typer.Option(
            "--with-prefect",
            help="Also start a Prefect server (UI) and a process worker; deploy deployments/prefect.yaml.",
        ),
    ] = False,
) -> None:
    """Start the local servers in the background (does nothing if they already run)."""
    stack = local_stack.up(get_settings(), with_prefect=with_prefect)
    if stack.already_running:
        console.print("The local stack is already running.")
    _show(stack)


@app.command()
def down() -> None:
    """Stop the local servers (and the Prefect server and worker) started by `retrain local up`."""
    local_stack.down(get_settings())
    console.print("The local stack is stopped.")


@app.command()
def status() -> None:
    """Show which local servers run; exit code 1 if any is stopped."""
    stack = local_stack.status(get_settings())
    _show(stack)
    if not stack.running:
        raise typer.Exit(code=1)
