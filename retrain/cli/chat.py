"""`retrain chat "question"`: ask the model an alias points to, as an application would."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["register"]

_err = Console(stderr=True, highlight=False)


def chat_command(
    question: Annotated[str, typer.Argument(help="What to ask.", show_default=False)],
    alias: Annotated[str, typer.Option("--alias", help="The alias whose model answers.")] = "production",
    system: Annotated[str | None, typer.Option("--system", help="A system message to send first.")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1, help="Longest answer.")] = None,
) -> None:
    """Resolve the alias and print the answer of its model (the model id goes to stderr)."""
    from retrain.cli.credentials import with_credentials
    from retrain.config.settings import get_settings
    from retrain.evaluate.chat import ask_model
    from retrain.providers.clients import provider_named
    from retrain.registry.resolver import resolve_record
    from retrain.train.lora.serving import serve_record

    settings = get_settings()
    record = resolve_record(alias, settings)
    serve_record(settings, record)  # a lora adapter is loaded into its endpoint first, if it is not
    provider = with_credentials(provider_named(settings, record.provider))
    answer = ask_model(
        question, record.model_id, provider, system=system, max_tokens=max_tokens, settings=settings
    )
    _err.print(f"[dim]{escape(f'{alias} -> {answer.model} ({answer.provider})')}[/]")
    typer.echo(str(answer))


def register(root: typer.Typer) -> None:
    """Add the `chat` command to the root CLI."""
    root.command("chat")(chat_command)
