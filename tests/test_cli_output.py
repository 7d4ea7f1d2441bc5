"""The inspection commands' rows: a table when every value fits whole, else a block per row."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from retrain.cli.output import Rows, print_fields

MODEL = "ft:gpt-4o-mini-2024-07-18:acme-support:retrain-20261101:Gv6tsEV7"


def _printed(rows: Rows, width: int) -> list[str]:
    return _lines(rows.print, width)


def _lines(draw: Callable[[Console], None], width: int) -> list[str]:
    """What ``draw`` prints on a console ``width`` columns wide, without trailing spaces."""
    out = io.StringIO()
    draw(Console(file=out, width=width, markup=False, highlight=False, color_system=None))
    return [line.rstrip() for line in out.getvalue().splitlines()]


def _aliases() -> Rows:
    rows = Rows("Aliases", ("Alias", "Model", "By"))
    rows.add_row("production", MODEL, "demo")
    rows.add_row("candidate", "ft:b", Text("nightly", style="bold"))
    return rows


def test_a_wide_terminal_gets_a_table_with_each_row_on_one_line() -> None:
    lines = _printed(_aliases(), width=120)
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]
    assert ["production", MODEL, "demo"] in cells and ["candidate", "ft:b", "nightly"] in cells
    widest = max(len(line) for line in lines)
    assert _printed(_aliases(), width=widest) == lines  # just wide enough: still the table
    assert _printed(_aliases(), width=widest - 1)[:3] == ["Aliases", "", "production"]


def test_a_narrow_terminal_gets_blocks_that_keep_every_value_whole() -> None:
    assert _printed(_aliases(), width=60) == [
        "Aliases",
        "",
        "production",
        f"  Model  {MODEL}",
        "  By     demo",
        "",
        "candidate",
        "  Model  ft:b",
        "  By     nightly",
    ]


def test_a_value_of_several_lines_continues_under_the_first() -> None:
    rows = Rows("Quarantined lines", ("Source", "Line", "Reasons"))
    rows.add_row("incoming/2026-11-01/app.jsonl", "7", "not_json: line 7 is not JSON\nsecond: another reason")
    assert _printed(rows, width=40)[2:] == [
        "incoming/2026-11-01/app.jsonl",
        "  Line     7",
        "  Reasons  not_json: line 7 is not JSON",
        "           second: another reason",
    ]


def test_fields_are_a_table_when_they_fit_and_lines_when_not() -> None:
    def draw(console: Console) -> None:
        print_fields(console, "production -> ft:b", {"model": MODEL, "provider": "local"})

    assert _lines(draw, width=60) == [
        "production -> ft:b",
        f"  model     {MODEL}",
        "  provider  local",
    ]
    assert f"│ model    │ {MODEL} │" in _lines(draw, width=100)
