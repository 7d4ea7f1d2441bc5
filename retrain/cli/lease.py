"""`retrain lease ...`: who holds the nightly lease, and freeing it when its holder died unnoticed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from retrain.cli.actor import cli_actor
from retrain.cli.output import plain_console
from retrain.config.settings import get_settings
from retrain.exceptions import RunInProgress
from retrain.ingest.lease import NIGHTLY, Lease, break_lease, current
from retrain.storage.object_store import ObjectStore

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True,
    help="The nightly lease (one nightly run or ingest at a time): show it, or break a dead holder's.",
)

_console = plain_console()


def _store() -> ObjectStore:
    store = ObjectStore.from_settings(get_settings().s3)
    store.check_bucket()
    return store


def _describe(lease: Lease) -> str:
    left = lease.expires_at - datetime.now(UTC)
    minutes = abs(left.total_seconds()) / 60
    when = f"{minutes:.0f} min left" if left.total_seconds() > 0 else f"lapsed {minutes:.0f} min ago"
    gone = "; that process is gone" if lease.holder.is_gone() else ""
    return f"held by {lease.holder.describe()} until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC ({when}{gone})"


@app.command()
def show() -> None:
    """Who holds the nightly lease, and until when."""
    lease = current(_store(), NIGHTLY)
    _console.print(f"{NIGHTLY} lease: " + ("free" if lease is None else _describe(lease)))


@app.command("break")
def break_command(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Free the nightly lease of a holder that died unnoticed, so the next run need not wait.

    Runs take over a lease whose holder's process (on the same machine) or Prefect flow run has
    ended on their own; this is for the rest, e.g. a run on a machine that vanished.
    """
    store = _store()
    lease = current(store, NIGHTLY)
    if lease is None:
        _console.print(f"{NIGHTLY} lease: free, nothing to break")
        return
    if lease.holder.runs_here():
        raise RunInProgress(
            f"{lease.holder.describe()} is still running on this machine: "
            f"stop it (kill {lease.holder.pid}) or let it finish instead"
        )
    _console.print(f"{NIGHTLY} lease: {_describe(lease)}")
    if not yes:
        typer.confirm(
            "Break it? Do this only if that run is dead: a live one would lose the lease mid-run",
            abort=True,
        )
    break_lease(store, lease, cli_actor())
    _console.print(f"broke the {NIGHTLY} lease of {lease.holder.run_id}: the next run takes it")
