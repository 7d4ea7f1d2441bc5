"""`retrain history`: production's score on an eval set night by night, as the night summary charts it."""

from __future__ import annotations

from typing import Annotated

import typer

from retrain.cli.output import AsJson, Rows, plain_console, print_json
from retrain.config.settings import get_settings
from retrain.report.history import NIGHTS, score_history_of
from retrain.storage.object_store import ObjectStore

__all__ = ["register"]

_console = plain_console()


def history(
    eval_set: Annotated[
        str | None,
        typer.Option("--set", help="Eval set (default: RETRAIN_EVALUATION__EVAL_SET).", show_default=False),
    ] = None,
    nights: Annotated[int, typer.Option("--nights", min=1, help="How many of the newest points.")] = NIGHTS,
    as_json: AsJson = False,
) -> None:
    """Production's score night by night, with each promotion, rejection and rollback."""
    settings = get_settings()
    primary = settings.evaluation.eval_set
    name = eval_set or primary
    known = [primary, *settings.evaluation.guardrails]
    if name not in known:
        raise typer.BadParameter(f"{name!r} is not an eval set of the nightly run: use one of {known}")
    points = score_history_of(ObjectStore.from_settings(settings.s3), name, primary=primary, nights=nights)
    if as_json:
        print_json({"eval_set": name, "points": [p.to_json() for p in points]})
        return
    if not points:
        _console.print(f"no decisions or rollbacks recorded yet for eval set {name!r}")
        return
    table = Rows(f"Production's score on {name!r}", ("Night", "Score", "Event", "Production model"))
    for point in points:
        table.add_row(point.night, f"{point.score:.3f}", point.event, point.model_id)
    table.print(_console)


def register(root: typer.Typer) -> None:
    root.command("history")(history)
