"""`retrain ingest`: find new objects under incoming/ and curate them, outside the nightly flow.

Without options it does what a night's ingest step does (list from the watermark on);
``--reconcile`` lists all of incoming/ to find stragglers written late under old date
partitions; ``--dry-run`` only reports what would be ingested. It holds the nightly lease
while it looks for and ingests new objects, so it never runs beside a night.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from retrain.cli.credentials import with_credentials
from retrain.config.settings import get_settings
from retrain.train.lora.special_tokens import training_special_tokens
from retrain.validate.moderation import moderation_line, moderator_for

__all__ = ["register"]

_console = Console(highlight=False)


def ingest_command(
    reconcile: Annotated[
        bool,
        typer.Option("--reconcile", help="List all of incoming/ (slow), not just keys after the watermark."),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the new objects.")] = False,
) -> None:
    """Ingest new examples from incoming/ now (the nightly flow does this on its own)."""
    from retrain.evaluate.eval_sets import load_eval_set
    from retrain.ingest.batches import ingest_objects
    from retrain.ingest.discovery import discover, read_watermark
    from retrain.ingest.lease import NIGHTLY, Holder, acquire, held
    from retrain.storage.object_store import ObjectStore
    from retrain.validate.canonical import normalise_prompt

    settings = get_settings()
    store = ObjectStore.from_settings(settings.s3)
    store.check_bucket()
    run_id = f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    ttl = settings.orchestration.run_lease
    # Discovery and ingest under the nightly lease: a night in between would ingest the same objects.
    lease: AbstractContextManager[object] = (
        nullcontext()
        if dry_run
        else held(store, acquire(store, NIGHTLY, Holder.this_process(run_id), ttl), ttl)
    )
    with lease:
        found = discover(
            store, reconcile=reconcile or settings.ingest.reconcile, overlap_days=settings.ingest.overlap_days
        )
        scope = "all of incoming/" if found.reconciled else f"keys after {found.start_after}"
        _console.print(f"listed {found.listed} key(s) ({scope}): {len(found.new)} new object(s)")
        for info in found.new[:50]:
            _console.print(f"  {info.key}  {info.size} bytes")
        if len(found.new) > 50:
            _console.print(f"  ... and {len(found.new) - 50} more")
        if dry_run or not found.new:
            return
        prompts: set[str] = set()
        for name in [settings.evaluation.eval_set, *settings.evaluation.guardrails]:
            prompts.update(
                normalise_prompt(item.prompt_messages) for item in load_eval_set(store, name).items
            )
        report = ingest_objects(
            store,
            found.new,
            settings,
            run_id=run_id,
            eval_prompts=prompts,
            special_tokens=training_special_tokens(settings),
            moderator=moderator_for(settings.validation, lambda: with_credentials(settings.provider)),
        )
    _console.print(
        f"batch {report.batch_id}: {report.lines_read} lines read = {report.accepted} accepted + "
        f"{report.quarantined} quarantined; dataset version {report.version_id or '-'}; "
        f"watermark {read_watermark(store) or '-'}"
    )
    if report.moderation:
        _console.print(f"moderation pre-check: {moderation_line(report.moderation)}", highlight=False)
    for message in report.failed_gates:
        _console.print(f"[red]gate failed:[/] {escape(message)}")
    if not report.passed:
        raise typer.Exit(code=1)


def register(root: typer.Typer) -> None:
    """Add the `ingest` command to the root CLI."""
    root.command("ingest")(ingest_command)
