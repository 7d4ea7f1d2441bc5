"""What the inspection commands share: `--json` for scripts, tables, and a console for user data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["AsJson", "columns_table", "fields_table", "plain_console", "print_error", "print_json"]

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")]


def plain_console(*, stderr: bool = False) -> Console:
    """A console that prints text as it is: quarantined lines, reasons, model ids and error
    messages can hold rich markup (``[/x]``), which must neither style the output nor crash it."""
    return Console(stderr=stderr, highlight=False, markup=False)


def print_error(message: str) -> None:
    """The one-line ``error: ...`` on stderr; the message is printed as it is, never as markup."""
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def fields_table(title: str, rows: Mapping[str, str]) -> Table:
    """One object's fields, name then value, without a header."""
    table = Table(title=title, show_header=False)
    table.add_column("Field", style="bold")
    table.add_column("Value", overflow="fold")
    for field, value in rows.items():
        table.add_row(field, value)
    return table


def columns_table(title: str, columns: tuple[str, ...]) -> Table:
    """A table of rows under these column headers; long values fold instead of being cut."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
