"""``retrain local up | down | status``: the embedded local S3 and OpenAI-compatible servers."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from retrain import local_stack
from retrain.local_stack import StackStatus
from retrain.settings import get_settings

__all__ = ["app"]

app = typer.Typer(
    help="Run the local stack: an S3 server and an OpenAI-compatible fine-tuning server.",
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
        console.print("Point retrain at it with:")
        for name, value in stack.env.items():
            console.print(f"  export {name}={value}", highlight=False, soft_wrap=True)


@app.command()
def up() -> None:
    """Start the local servers in the background (does nothing if they already run)."""
    stack = local_stack.up(get_settings())
    if stack.already_running:
        console.print("The local stack is already running.")
    _show(stack)


@app.command()
def down() -> None:
    """Stop the local servers started by `retrain local up`."""
    local_stack.down(get_settings())
    console.print("The local stack is stopped.")


@app.command()
def status() -> None:
    """Show which local servers run; exit code 1 if any is stopped."""
    stack = local_stack.status(get_settings())
    _show(stack)
    if not stack.running:
        raise typer.Exit(code=1)
