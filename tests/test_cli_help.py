"""`retrain --help` and every command's help: where to start, and value names instead of type tags."""

from __future__ import annotations

import re
from collections.abc import Iterator

import typer.main
from typer import _click
from typer.testing import CliRunner

from retrain.cli.main import app

_TYPE_TAG = re.compile(r"<(bool|str|int|float|list\[[^\]]*\]|[a-z_]+ range|path|datetime)>")


def _command_paths(command: _click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


def test_every_help_names_values_without_type_tags() -> None:
    paths = list(_command_paths(typer.main.get_command(app)))
    assert len(paths) > 30  # the root, every command and every subcommand
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=100)
        assert result.exit_code == 0, (path, result.output)
        assert not _TYPE_TAG.search(result.output), (path, _TYPE_TAG.findall(result.output))


def test_root_help_says_where_to_start() -> None:
    output = CliRunner().invoke(app, ["--help"], terminal_width=100).output
    panels = [line for line in output.splitlines() if line.startswith("╭─ ")]
    assert [p.split("─ ")[1].split(" ─")[0] for p in panels] == [
        "Options",
        "Start here",
        "Inspect",
        "Operate",
    ]
    start = output.split("Start here")[1].split("╰")[0]
    names = [line[2:].split()[0] for line in start.splitlines() if line.startswith("│ ") and line[2] != " "]
    assert names[:3] == ["demo", "check", "run"]
    assert "New here? `retrain demo`" in " ".join(output.split())
    history = CliRunner().invoke(app, ["history", "--help"]).output
    assert re.search(r"--nights +INTEGER", history), history
