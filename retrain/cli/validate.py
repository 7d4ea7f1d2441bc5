"""`retrain validate PATH...`: validate local or s3:// JSONL files without any fine-tuning server.

Exit codes: 0 the batch passes its gates, 1 it fails them, 2 when it cannot tell (a missing
file, a bad option or setting, an unreadable source). The JSON report (``--report``) holds
``total_lines``, ``accepted``, ``quarantined``, ``by_reason``, ``per_source``, ``token_stats``,
``cost_estimate_usd``, ``cost``, ``gates`` and ``data_docs_index`` (the built Data Docs'
index.html with ``--data-docs``, else null);
``--quarantine`` writes one JSON object per quarantined line (source, line_no, reasons, raw).
Nothing is held in memory per example, so very large files stream through.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.table import Table

from retrain.cli.credentials import with_credentials
from retrain.cli.output import Rows, plain_console, print_error
from retrain.config.settings import load_settings
from retrain.exceptions import BucketNotFound
from retrain.train.lora.special_tokens import training_special_tokens
from retrain.validate.batch import validate_batch
from retrain.validate.batch_result import BatchResult, QuarantinedLine
from retrain.validate.moderation import moderation_line, moderator_for
from retrain.validate.source_notes import SourceWatch

if TYPE_CHECKING:
    from retrain.storage.object_store import ObjectStore

__all__ = ["register"]

_CHUNK = 1 << 20
_console = Console()
_plain = plain_console()
_notes = plain_console(stderr=True)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _local_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
    return [path]


def _usage_error(message: str) -> typer.Exit:
    print_error(message)
    return typer.Exit(code=2)


def _unless_bucket_missing(store: ObjectStore) -> str:
    """Why an S3 key was not found, when the reason is that its bucket is not there."""
    try:
        store.check_bucket()
    except BucketNotFound:
        return f": bucket {store.bucket!r} does not exist (check the URI, or RETRAIN_S3__ENDPOINT_URL)"
    return ""


def _sources(paths: list[str]) -> list[SourceWatch]:
    """The chunks of each input, watched; raises typer.Exit(2) for anything missing, before reading."""
    sources: list[SourceWatch] = []
    for raw in paths:
        if raw.startswith("s3://"):
            from retrain.storage.object_store import ObjectStore, make_s3_client, split_s3_uri

            bucket, key = split_s3_uri(raw)
            if not bucket or not key:
                raise _usage_error(f"{raw} is not an s3://bucket/key URI")
            store = ObjectStore(make_s3_client(load_settings().s3), bucket)
            if store.head(key) is None:
                raise _usage_error(f"{raw} does not exist{_unless_bucket_missing(store)}")
            sources.append(SourceWatch(raw, store.iter_chunks(key)))
            continue
        path = Path(raw)
        if not path.exists():
            raise _usage_error(f"{raw} does not exist")
        files = _local_files(path)
        if not files:
            raise _usage_error(f"{raw} holds no .jsonl or .jsonl.gz files")
        sources += [SourceWatch(str(file), _file_chunks(file)) for file in files]
    return sources


def _print_summary(result: BatchResult) -> None:
    _console.print(
        f"[bold]{result.lines_read:,}[/] lines: [green]{result.n_accepted:,} accepted[/], "
        f"[red]{result.n_quarantined:,} quarantined[/]"
    )
    if result.by_reason:
        reasons = Rows("Quarantine reasons", ("reason", "lines", "first line's reason"))
        for code, count in sorted(result.by_reason.items(), key=lambda item: -item[1]):
            reasons.add_row(code, f"{count:,}", result.reason_examples.get(code, ""))
        reasons.print(_plain)
    stats = result.token_stats
    if stats.get("count"):
        _console.print(
            f"tokens per example: mean {stats['mean']:g}, p50 {stats['p50']:g}, p95 {stats['p95']:g}, "
            f"max {stats['max']:,}; total {stats['total']:,}"
        )
    if result.cost_estimate_usd is not None:
        _console.print(
            f"estimated training cost: ${result.cost_estimate_usd:,.2f} "
            f"({result.cost['epochs']} epochs, {result.cost['billable_tokens']:,} billable tokens)"
        )
    gates = Table("gate", "result", "detail", title="Gates")
    for gate in result.gates:
        style = "yellow" if gate.skipped else "green" if gate.passed else "red"
        gates.add_row(gate.name, f"[{style}]{gate.result}[/]", gate.detail)
    _console.print(gates)
    if result.data_docs_index is not None:
        _console.print(f"Data Docs: {result.data_docs_index}", highlight=False, soft_wrap=True)
    verdict = (
        "[bold green]batch passes its gates[/]" if result.passed else "[bold red]batch fails its gates[/]"
    )
    _console.print(verdict)


def validate_command(
    paths: Annotated[
        list[str], typer.Argument(help="JSONL or JSONL.gz files, folders of them, or s3://bucket/key.")
    ],
    data_format: Annotated[
        str | None, typer.Option("--format", help="chat or preference (default: RETRAIN_VALIDATION__FORMAT).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Base model for token limits and cost (default: training model)."),
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")] = None,
    quarantine: Annotated[
        Path | None,
        typer.Option("--quarantine", help="Write quarantined lines here as JSONL (may hold secrets)."),
    ] = None,
    data_docs: Annotated[
        Path | None, typer.Option("--data-docs", help="Build Great Expectations Data Docs into this folder.")
    ] = None,
) -> None:
    """Validate training data files and report what would be accepted and quarantined."""
    if data_format not in (None, "chat", "preference"):
        raise _usage_error(f"--format must be chat or preference, not {data_format!r}")
    settings = load_settings()
    validation = settings.validation
    if data_format is not None:
        fmt: Literal["chat", "preference"] = "chat" if data_format == "chat" else "preference"
        validation = validation.model_copy(update={"format": fmt})
    sources = _sources(paths)
    moderator = moderator_for(validation, lambda: with_credentials(settings.provider))
    with ExitStack() as stack:
        sink_file = stack.enter_context(quarantine.open("wb")) if quarantine else None

        def sink(line: QuarantinedLine) -> None:
            if sink_file is not None:
                sink_file.write(orjson.dumps(line.to_json()) + b"\n")

        result = validate_batch(
            [(source.name, iter(source)) for source in sources],
            validation,
            base_model=model or settings.training.base_model,
            special_tokens=training_special_tokens(settings),
            training=settings.training,
            data_docs_dir=data_docs,
            keep_examples=False,
            quarantine_sink=sink,
            moderator=moderator,
        )
    if report:
        report.write_bytes(
            orjson.dumps(result.summary(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
    for source in sources:
        counts = result.per_source.get(source.name)
        for note in source.notes(counts.lines_read if counts else 0):
            _notes.print(f"note: {note}", soft_wrap=True)
    _print_summary(result)
    if moderator is not None:
        _console.print(f"moderation pre-check: {moderation_line(moderator.stats.to_json())}", highlight=False)
    if not result.passed:
        raise typer.Exit(code=1)


def register(root: typer.Typer) -> None:
    """Add the `validate` command to the root app."""
    root.command("validate")(validate_command)
