"""`retrain config-reference`: every setting with its env var, default and description."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrain.config.reference import BEGIN_MARKER, END_MARKER, configuration_reference

__all__ = ["register"]


def config_reference(
    write: Annotated[
        Path | None, typer.Option(help="Replace the generated section of this file (e.g. README.md).")
    ] = None,
) -> None:
    """Print the configuration reference (or update it in a markdown file)."""
    reference = configuration_reference()
    if write is None:
        typer.echo(reference)
        return
    text = write.read_text(encoding="utf-8")
    if BEGIN_MARKER not in text or END_MARKER not in text:
        raise typer.BadParameter(
            f"{write} has no generated section: add the markers first", param_hint="--write"
        )
    before, rest = text.split(BEGIN_MARKER, 1)
    after = rest.split(END_MARKER, 1)[1]
    write.write_text(before + reference + after, encoding="utf-8")
    typer.echo(f"updated the configuration reference in {write}")


def register(root: typer.Typer) -> None:
    root.command("config-reference")(config_reference)
