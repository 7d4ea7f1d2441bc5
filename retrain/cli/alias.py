"""`retrain alias ...`: inspect and move model aliases (production, staging, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from retrain.cli.actor import cli_actor
from retrain.cli.alias_events import announce_cli_alias_change
from retrain.cli.credentials import with_credentials
from retrain.cli.output import AsJson, Rows, plain_console, print_fields, print_json
from retrain.config.settings import get_settings
from retrain.exceptions import UnknownModel
from retrain.providers.clients import provider_named, require_model
from retrain.registry.registry import ModelRecord, Registry, RegistryEvent
from retrain.registry.resolver import AliasReader
from retrain.registry.retirement import notices_for
from retrain.storage.object_store import ObjectStore

__all__ = ["app", "print_history"]

app = typer.Typer(
    no_args_is_help=True,
    help="Model aliases: which model `production` (or any alias) serves, its history, and rollbacks.",
)

AliasName = Annotated[str, typer.Argument(help="The alias, e.g. production.", show_default=False)]


def _registry() -> Registry:
    return Registry(ObjectStore.from_settings(get_settings().s3))


def _console() -> Console:
    return plain_console()


def _changed(before: str | None, event: RegistryEvent) -> None:
    if before != event.model.model_id:
        _console().print(f"{event.alias}: {before or '-'} -> {event.model.model_id} (event {event.seq})")
        _console().print(announce_cli_alias_change(event))
    else:
        _console().print(
            f"{event.alias} already points to {event.model.model_id} (event {event.seq}); nothing written"
        )


@app.command("list")
def list_aliases(as_json: AsJson = False) -> None:
    """Every alias and the model it points to."""
    state = _registry().state()
    if as_json:
        print_json({name: state.aliases[name].model_dump(mode="json") for name in sorted(state.aliases)})
        return
    if not state.aliases:
        _console().print("no aliases yet: create one with `retrain alias set NAME MODEL`")
        return
    table = Rows("Aliases", ("Alias", "Model", "Provider", "Since (UTC)", "Action", "By"))
    for name in sorted(state.aliases):
        event = state.aliases[name]
        table.add_row(
            name,
            event.model.model_id,
            event.model.provider,
            f"{event.at:%Y-%m-%d %H:%M}",
            event.action,
            event.actor,
        )
    table.print(_console())


@app.command()
def show(name: AliasName, as_json: AsJson = False) -> None:
    """The model an alias points to, with its record and scores."""
    event = _registry().current(name)
    if as_json:
        print_json(event.model_dump(mode="json"))
        return
    model = event.model
    rows = {
        "model": model.model_id,
        "provider": model.provider,
        "base model": model.base_model,
        "job": model.job_id or "-",
        "dataset version": model.dataset_version or "-",
        "eval run": model.eval_run or "-",
        "created": model.created_at.isoformat(timespec="seconds"),
        "set by": f"{event.actor} ({event.action}, event {event.seq}, {event.at:%Y-%m-%d %H:%M:%S})",
        "reason": event.reason,
        "previous": event.previous_model_id or "-",
    }
    rows.update({f"score {key}": f"{value:.4f}" for key, value in sorted(model.scores.items())})
    if model.deployment:
        rows["deployment"] = model.deployment
    settings = get_settings()
    notices = notices_for(settings, model, datetime.now(UTC).date())
    for notice in notices:
        rows[f"warning ({notice.kind.replace('_', ' ')})"] = notice.line
    print_fields(_console(), f"{name} -> {model.model_id}", rows)


@app.command()
def history(
    name: AliasName,
    limit: Annotated[int | None, typer.Option(min=1, help="Show only the newest N events.")] = None,
    as_json: AsJson = False,
) -> None:
    """Every change of an alias, oldest first."""
    events = _registry().history(name)
    if limit:
        events = events[-limit:]
    if as_json:
        print_json([event.model_dump(mode="json") for event in events])
        return
    print_history(name, events)


def print_history(name: str, events: Sequence[RegistryEvent]) -> None:
    """Each change of an alias as a log entry, oldest first: model ids stay whole (to copy into
    `rollback --to`) and every line reads at any terminal width."""
    console = _console()
    console.print(Text(f"History of {name} (oldest first)", style="bold"))
    for event in events:
        console.print()
        console.print(
            Text.assemble(
                (f"#{event.seq}", "bold"),
                f"  {event.at:%Y-%m-%d %H:%M:%S} UTC  ",
                (event.action, "bold"),
                f"  by {event.actor}",
            )
        )
        details = {
            "model": f"{event.model.model_id} (on {event.model.provider})",
            "previous": event.previous_model_id or "-",
            "reason": event.reason,
        }
        for label, value in details.items():
            console.print(f"    {label:<9}{value}", soft_wrap=True)


@app.command("set")
def set_alias(
    name: AliasName,
    model: Annotated[str, typer.Argument(help="The model id to point the alias to.", show_default=False)],
    provider: Annotated[
        str | None, typer.Option(help="Provider name (default: the model's recorded one, else settings).")
    ] = None,
    base_model: Annotated[str | None, typer.Option(help="Base model of a model new to the registry.")] = None,
    reason: Annotated[str, typer.Option(help="Why; kept in the history.")] = "set from the CLI",
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="First check that the provider knows the model.")
    ] = True,
) -> None:
    """Point an alias to a model (known to the registry or not), once its provider confirms it."""
    settings = get_settings()
    registry = _registry()
    known = registry.model(model)
    if known is None:
        record = ModelRecord(
            model_id=model,
            provider=provider or settings.provider.name,
            base_model=base_model or settings.training.base_model,
        )
    else:
        record = known.model_copy(update={"provider": provider or known.provider})
    if verify:
        try:
            require_model(with_credentials(provider_named(settings, record.provider)), model)
        except UnknownModel as exc:
            raise UnknownModel(f"{exc}, or pass --no-verify to point {name!r} there anyway") from None
    before = registry.get(name)
    event = registry.set(name, record, actor=cli_actor(), reason=reason)
    _changed(before.model_id if before else None, event)


@app.command()
def rollback(
    name: AliasName,
    to: Annotated[str | None, typer.Option("--to", help="Model id to roll back to.")] = None,
    steps: Annotated[int, typer.Option(min=1, help="How many distinct models to go back.")] = 1,
    reason: Annotated[str, typer.Option(help="Why; kept in the history.")] = "rollback from the CLI",
) -> None:
    """Point an alias back to an earlier model (by default the one before the current)."""
    if to is not None and steps != 1:
        raise typer.BadParameter("use either --to or --steps, not both")
    registry = _registry()
    before = registry.current(name).model.model_id
    event = registry.rollback(name, to=to, steps=steps, actor=cli_actor(), reason=reason)
    _changed(before, event)
    from retrain.train.lora.serving import serve_record

    if serve_record(get_settings(), event.model):
        typer.echo(f"loaded adapter {event.model.model_id} into provider {event.model.provider}")


@app.command()
def resolve(name: AliasName) -> None:
    """Print just the model id the alias points to, read as serving code reads it (for scripts)."""
    typer.echo(AliasReader(ObjectStore.from_settings(get_settings().s3)).resolve(name).model_id)
