"""The `retrain` command line: one Typer app, one sub-app per command group.

Errors raised on purpose (``RetrainError``) print as one line and exit 1 (2 for
``validate``, whose 1 means a batch that fails its gates); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer import _click
from typer.core import TyperGroup

from retrain.cli.debug import debugging, set_debugging
from retrain.cli.output import print_error
from retrain.exceptions import RetrainError

__all__ = ["app"]

# Where exit code 1 already means something (validate: the batch fails its gates), errors exit 2.
_ERROR_EXIT_CODES = {"validate": 2}


class _RetrainGroup(TyperGroup):
    """Turns RetrainError into one readable line instead of a traceback."""

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
)


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
    for module in (run, check, validate, evaluate, spend, ops, config):
        module.register(app)
    from retrain.cli import serve

    serve.register(app)
    from retrain.cli import chat, ingest

    chat.register(app)
    ingest.register(app)


_register_commands()
