"""`retrain data ...`: the curated dataset versions, what each holds and what came of it.

A version is what a night trains on (``curated/versions/{id}.json``): its shards, the
train/validation split and the training-set policy. Beside it, the decision for that version
(promoted or rejected, with the scores) and the candidate model trained on it, or the permanent
failure that keeps it from being trained (``retrain.train.failures``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from retrain.cli.output import AsJson, Rows, plain_console, print_fields, print_json
from retrain.config.settings import get_settings
from retrain.curate.dataset import DatasetVersion, latest_version, list_versions, load_version
from retrain.exceptions import DataError
from retrain.promote.decision import Decision, load_decision
from retrain.storage.object_store import ObjectStore
from retrain.train.failures import PermanentFailure, load_failure

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True, help="Curated dataset versions: what each holds, and what was trained on it."
)

_console = plain_console()


def _store() -> ObjectStore:
    return ObjectStore.from_settings(get_settings().s3)


Verdict = tuple[Decision | None, PermanentFailure | None]


def _verdict(store: ObjectStore, version: DatasetVersion) -> Verdict:
    """The version's decision, or else the permanent failure that keeps it untrained."""
    decision = load_decision(store, version.version_id)
    return decision, None if decision is not None else load_failure(store, version.version_id)


def _outcome(decision: Decision | None, failure: PermanentFailure | None) -> str:
    if failure is not None:
        return f"failed permanently ({failure.code}), not trained again"
    if decision is None:
        return "not decided"
    verdict = "promoted" if decision.promote else "rejected"
    return f"{verdict} ({decision.candidate_score:.4f} vs {decision.production_score:.4f})"


def _as_json(
    version: DatasetVersion, decision: Decision | None, failure: PermanentFailure | None
) -> dict[str, Any]:
    outcome = None
    if decision is not None:
        outcome = {
            "promote": decision.promote,
            "reason": decision.reason,
            "candidate": decision.candidate.model_id,
            "candidate_score": decision.candidate_score,
            "production": decision.production.model_id,
            "production_score": decision.production_score,
            "run_id": decision.run_id,
            "decided_at": decision.decided_at,
        }
    failed = failure.model_dump(mode="json") if failure is not None else None
    return {**version.to_json(), "decision": outcome, "failure": failed}


@app.command("list")
def list_command(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest first.")] = 20,
    as_json: AsJson = False,
) -> None:
    """The newest dataset versions: size, split and what was decided for each."""
    store = _store()
    versions = list_versions(store, newest=limit)[::-1]
    decided = [(version, _verdict(store, version)) for version in versions]
    if as_json:
        print_json([_as_json(version, *verdict) for version, verdict in decided])
        return
    if not versions:
        _console.print("no dataset versions yet: a night curates one from the examples under incoming/")
        return
    columns = ("Version", "Created (UTC)", "Run", "Examples", "Train / validation", "Outcome")
    table = Rows(f"Dataset versions in {store.uri('curated/')}", columns)
    for version, verdict in decided:
        table.add_row(
            version.version_id,
            version.created_at.replace("T", " ").removesuffix("+00:00"),
            version.run_id,
            f"{version.examples:,}",
            f"{version.train:,} / {version.validation:,}",
            _outcome(*verdict),
        )
    table.print(_console)


@app.command()
def show(
    version_id: Annotated[
        str | None, typer.Argument(help="A dataset version id (default: the newest).", show_default=False)
    ] = None,
    as_json: AsJson = False,
) -> None:
    """One dataset version: its shards, policy, and the decision and model that came of it."""
    store = _store()
    version = load_version(store, version_id) if version_id else latest_version(store)
    if version is None:
        raise DataError("no dataset versions yet: a night curates one from the examples under incoming/")
    decision, failure = _verdict(store, version)
    if as_json:
        print_json(_as_json(version, decision, failure))
        return
    rows = {
        "created (UTC)": version.created_at,
        "curated by run": version.run_id,
        "examples": f"{version.examples:,} ({version.train:,} train, {version.validation:,} validation)",
        "policy": json.dumps(version.policy),
        "outcome": _outcome(decision, failure),
    }
    if failure is not None:
        rows |= {"failure": failure.summary, "failed": f"{failure.failed_at} in run {failure.run_id}"}
    if decision is not None:
        rows |= {
            "candidate": decision.candidate.model_id,
            "compared with": decision.production.model_id,
            "reason": decision.reason,
            "decided": f"{decision.decided_at} by run {decision.run_id}",
        }
    print_fields(_console, f"Dataset version {version.version_id}", rows)
    shards = Rows("Shards", ("Shard", "Examples", "Train", "Validation"))
    for shard in version.shards:
        shards.add_row(shard.key, f"{shard.examples:,}", f"{shard.train:,}", f"{shard.validation:,}")
    shards.print(_console)
