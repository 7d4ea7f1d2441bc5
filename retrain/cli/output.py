"""What the inspection commands share: `--json` for scripts, rows that stay readable at any
width, and a console for user data."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = ["AsJson", "Rows", "plain_console", "print_error", "print_fields", "print_json"]

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of text.")]


def plain_console(*, stderr: bool = False) -> Console:
    """A console that prints text as it is: quarantined lines, reasons, model ids and error
    messages can hold rich markup (``[/x]``), which must neither style the output nor crash it."""
    return Console(stderr=stderr, highlight=False, markup=False)


def print_error(message: str) -> None:
    """The one-line ``error: ...`` on stderr; the message is printed as it is, never as markup."""
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


Cell = str | Text


class Rows:
    """Rows under column headers, printed as a table when every value fits whole in the console's
    width, else as one block per row (the first value as its heading, then a line per column), so
    that ids and messages are never folded into pieces on a narrow terminal."""

    def __init__(self, title: str, columns: tuple[str, ...]) -> None:
        self.title = title
        self.columns = columns
        self.rows: list[tuple[Cell, ...]] = []

    def add_row(self, *values: Cell) -> None:
        self.rows.append(values)

    def print(self, console: Console) -> None:
        if self._width() <= console.width:
            table = Table(title=self.title)
            for column in self.columns:
                table.add_column(column, overflow="fold")
            for row in self.rows:
                table.add_row(*row)
            console.print(table)
            return
        console.print(Text(self.title, style="bold"))
        for heading, *values in self.rows:
            console.print()
            console.print(Text(heading, style="bold") if isinstance(heading, str) else heading)
            _print_labelled(console, dict(zip(self.columns[1:], values, strict=True)))

    def _width(self) -> int:
        return _table_width(
            [column, *(row[index] for row in self.rows)] for index, column in enumerate(self.columns)
        )


def print_fields(console: Console, title: str, fields: Mapping[str, Cell]) -> None:
    """One object's fields, name then value: a two-column table when every value fits whole,
    else the title and a line per field."""
    if _table_width([list(fields), list(fields.values())]) <= console.width:
        table = Table(title=title, show_header=False)
        table.add_column("Field", style="bold")
        table.add_column("Value", overflow="fold")
        for name, value in fields.items():
            table.add_row(name, value)
        console.print(table)
        return
    console.print(Text(title, style="bold"))
    _print_labelled(console, fields)


def _print_labelled(console: Console, fields: Mapping[str, Cell]) -> None:
    """``  name  value`` lines, names padded to one width; a value's further lines go under its
    first; long lines are left for the terminal to wrap, so values stay whole when copied."""
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        text = value if isinstance(value, Text) else Text(value)
        for number, line in enumerate(text.split()):
            label = f"  {name:<{width}}  " if number == 0 else " " * (width + 4)
            console.print(Text.assemble(label, line), soft_wrap=True)


def _table_width(columns: Iterable[Iterable[Cell]]) -> int:
    """A table's width with every column as wide as its widest line: the cells, a space either
    side of each, and the borders."""
    widths = [max(_widest_line(cell) for cell in column) for column in columns]
    return sum(widths) + 3 * len(widths) + 1


def _widest_line(value: Cell) -> int:
    plain = value.plain if isinstance(value, Text) else value
    return max((cell_len(line) for line in plain.splitlines()), default=0)
