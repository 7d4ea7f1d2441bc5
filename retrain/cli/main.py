"""The `retrain` command line: one Typer app, one sub-app per command group.

Errors raised on purpose (``RetrainError``) print as one line and exit 1 (2 for
``validate``, whose 1 means a batch that fails its gates); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer import _click
from typer.core import TyperArgument, TyperGroup, TyperOption

from retrain.cli.debug import debugging, set_debugging
from retrain.cli.output import print_error
from retrain.exceptions import RetrainError

__all__ = ["app"]

# Where exit code 1 already means something (validate: the batch fails its gates), errors exit 2.
_ERROR_EXIT_CODES = {"validate": 2}


_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH", "date": "YYYY-MM-DD"}


def _metavar(option: TyperOption) -> str:
    """A click-style value name (TEXT, INTEGER, [a|b]) instead of Typer's ``<list[str]>`` tags."""
    described = option.type_descriptor
    if described.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in described.choices or ()) + "]"
    annotation = described.annotation
    element = annotation.__args__[0] if described.is_list else annotation
    return _METAVARS.get(getattr(element, "__name__", ""), str(getattr(element, "__name__", "VALUE")).upper())


def _no_type_label(ctx: _click.Context) -> None:
    """An argument's name already says what it takes (``PATHS...``, ``QUESTION``)."""
    return None


def _plain_value_names(command: _click.Command) -> None:
    help_option = command.get_help_option(_click.Context(command))  # made now, so it is named too
    for param in [*command.params, *([help_option] if help_option else [])]:
        if isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = "" if param.is_flag or param.count else _metavar(param)
        elif isinstance(param, TyperArgument):
            setattr(param, "display_type_rich", _no_type_label)  # noqa: B010 (an instance override)
    for sub in getattr(command, "commands", {}).values():
        _plain_value_names(sub)


class _RetrainGroup(TyperGroup):
    """RetrainError as one readable line instead of a traceback; help with click-style value names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_value_names(self)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        _plain_value_names(self)  # the completion options are added after __init__
        super().format_help(ctx, formatter)

    def invoke(self, ctx: _click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RetrainError as exc:
            if debugging():
                raise
            print_error(str(exc))
            raise typer.Exit(code=_ERROR_EXIT_CODES.get(ctx.invoked_subcommand or "", 1)) from None


app = typer.Typer(
    cls=_RetrainGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Scheduled retraining for fine-tuned language models.",
    epilog="New here? `retrain demo` tells four nights on the local stack (no credentials, no internet); "
    "`retrain check` says whether a real night could run with your configuration.",
)

_PANELS = {
    "Start here": ["demo", "check", "run", "local"],
    "Inspect": ["alias", "history", "data", "batches", "jobs", "spend", "lease"],
    "Operate": ["serve", "migrate", "ingest", "validate", "eval", "chat", "automations", "config-reference"],
}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    set_debugging(debug)


def _register_commands() -> None:
    from retrain.cli import (
        alias,
        batches,
        check,
        config,
        data,
        evaluate,
        history,
        jobs,
        lease,
        local,
        ops,
        run,
        spend,
        validate,
    )

    app.add_typer(local.app, name="local")
    app.add_typer(alias.app, name="alias")
    app.add_typer(data.app, name="data")
    app.add_typer(batches.app, name="batches")
    app.add_typer(jobs.app, name="jobs")
    app.add_typer(lease.app, name="lease")
    for module in (run, check, validate, evaluate, history, spend, ops, config):
        module.register(app)
    from retrain.cli import serve

    serve.register(app)
    from retrain.cli import chat, ingest

    chat.register(app)
    ingest.register(app)
    _place_in_panels()


def _place_in_panels() -> None:
    panel_of = {name: panel for panel, names in _PANELS.items() for name in names}
    order = {name: i for i, name in enumerate(panel_of)}
    for command in app.registered_commands:
        command.rich_help_panel = panel_of[str(command.name)]
    for group in app.registered_groups:
        group.rich_help_panel = panel_of[str(group.name)]
    app.registered_commands.sort(key=lambda info: order[str(info.name)])


_register_commands()
