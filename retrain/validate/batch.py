"""Validate a night's batch of training examples: what the nightly flow and ``retrain validate`` call.

For every source (an S3 key or a file) the raw byte chunks are grouped into blocks of whole
lines (``jsonl_reader.iter_line_blocks``) and each block goes through the line checks
(``line_checks``): everything that depends on one line alone (JSON parsing, the data format
(``chat_format``), token counts (``tokens``), the secret scan, the eval-leak check, the hashes
and the GX feature columns). Those checks are pure, so once a batch reaches
``parallel_min_lines`` lines the blocks go to worker processes (``worker_pool``): forked when
this process runs no other thread, spawned otherwise (so a threaded caller, such as a flow run,
passes on no lock held by another thread). Results are consumed strictly in line order and
the GX chunks hold exactly ``chunk_rows`` candidates, so the outcome depends neither on the
number of workers nor on block or chunk sizes. The parent keeps what depends on the whole
batch: duplicate detection (``dedup``), the Great Expectations suite (``gx_chunks`` for its
row expectations, ``expectations``), the counts and the gates (``gates``).
Every non-blank line ends up either accepted or quarantined, so per source
``accepted + quarantined == lines_read`` (blank lines are not read lines; a corrupt gzip stream
adds one ``bad_gzip`` line).

Content checks and their reason codes: ``contains_secret`` (API keys, AWS access keys, private
key blocks, bearer tokens, GitHub and Slack tokens; the message names the field and the kind of
secret, never the secret itself, but the raw line is kept in the quarantine as is, so treat
quarantine files as sensitive), ``special_token`` (text the base model's tokenizer reads as a
special token, e.g. ``<|endoftext|>`` or ``<|im_start|>``, named in the message;
``special_tokens``), ``moderation_flagged`` (with ``moderator``: the provider's moderation
endpoint flagged the example, the categories named; ``moderation``), ``too_many_tokens``,
``duplicate`` (same ``example_hash`` earlier in the batch or among ``known_hashes``, the
curated data), ``near_duplicate`` (same ``near_duplicate_key``, i.e. the same user and
assistant text after case, whitespace and punctuation folding, earlier in the batch or among
``known_near_keys``), ``eval_leak`` (the user turns equal an eval prompt after
``normalise_prompt``). The first occurrence wins; later copies
are quarantined.

Memory stays bounded: per accepted example only two 8-byte dedup keys and three small gate
columns are kept (plus the example itself with ``keep_examples``); a block of raw lines (about
256 KB) is kept only until the GX chunk of its last candidate line is checked.

Batch gates never raise: ``BatchResult.passed`` is False and each failing ``GateCheck`` says why.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from retrain.config.stage_settings import TrainingSettings, ValidationSettings
from retrain.validate.batch_result import AcceptedExample, BatchResult, QuarantinedLine, SourceCounts
from retrain.validate.columns import ChunkedColumn
from retrain.validate.dedup import DuplicateScreen, is_duplicate
from retrain.validate.gates import GateColumns, batch_gates
from retrain.validate.gx_chunks import check_chunk, load_suite
from retrain.validate.jsonl_reader import iter_line_blocks
from retrain.validate.line_checks import CheckConfig, CheckedBlock, CheckedLine, LineChecker
from retrain.validate.moderation import Moderator
from retrain.validate.reason import Reason, reason_example
from retrain.validate.special_tokens import openai_special_tokens
from retrain.validate.tokens import estimate_cost, example_token_limit
from retrain.validate.worker_pool import OrderedChecks, worker_count

__all__ = ["check_line", "validate_batch"]

logger = logging.getLogger(__name__)


def check_line(
    data: bytes,
    *,
    base_model: str,
    settings: ValidationSettings,
    line_no: int = 1,
    eval_prompts: Container[str] = frozenset(),
    special_tokens: frozenset[str] | None = None,
) -> CheckedLine:
    """The per-line checks of one raw line (no duplicate or GX checks: those need the batch)."""
    config = _check_config(settings, base_model, eval_prompts, special_tokens, keep_examples=True)
    return LineChecker(config).check(line_no, data, 0, len(data))


def _check_config(
    settings: ValidationSettings,
    base_model: str,
    eval_prompts: Container[str],
    special_tokens: frozenset[str] | None,
    *,
    keep_examples: bool,
) -> CheckConfig:
    limit = example_token_limit(base_model, settings)
    return CheckConfig(
        settings.format,
        base_model,
        limit,
        eval_prompts,
        keep_examples,
        settings.max_line_bytes,
        openai_special_tokens() if special_tokens is None else special_tokens,
    )


@contextmanager
def _automatic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is validated (restored afterwards).

    Validation allocates millions of short-lived, acyclic objects (parsed lines, line results):
    reference counting frees them all, but they keep triggering collections, and each full one
    rescans every object alive in the process (a flow run holds millions: Prefect, GX, pandas).
    That was 10-15 % of a batch's time. Cycles made meanwhile are collected once it is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _BatchValidator:
    """The batch-wide state: duplicate keys, the pending GX chunk, counts and gate columns."""

    def __init__(
        self,
        settings: ValidationSettings,
        known_hashes: Container[str],
        known_near_keys: Container[str],
        keep_examples: bool,
        quarantine_sink: Callable[[QuarantinedLine], None] | None,
        moderator: Moderator | None,
    ) -> None:
        self.settings = settings
        self.moderator = moderator
        self.chunk_rows = settings.chunk_rows
        self.runner, self.row_columns = load_suite(settings)
        self.duplicate_screen = DuplicateScreen(known_hashes, known_near_keys)
        self.keep_examples = keep_examples
        self.sink = quarantine_sink
        self.pending: list[tuple[str, bytes, CheckedLine]] = []
        self.per_source: dict[str, SourceCounts] = {}
        self.by_reason: Counter[str] = Counter()
        self.reason_examples: dict[str, str] = {}
        self.accepted: list[AcceptedExample] = []
        self.quarantined: list[QuarantinedLine] = []
        self.gate_columns = GateColumns()
        self.accepted_tokens = ChunkedColumn(np.int64)
        self.duplicates = 0

    def take_block(self, source: str, data: bytes, checked: CheckedBlock) -> None:
        counts = self.per_source[source]
        counts.lines_read += len(checked.lines)
        counts.blank_lines += checked.blank_lines
        for line in checked.lines:
            if line.features is None:
                self.quarantine(source, line.line_no, data[line.start : line.end], line.reasons)
                continue
            if not line.reasons:
                self.duplicate_screen.screen(line)
            self.pending.append((source, data, line))
            if len(self.pending) == self.chunk_rows:  # line by line: the outcome ignores block sizes
                self.flush()

    def flush(self) -> None:
        """Run the row expectations over the pending chunk, then accept or quarantine its lines."""
        if not self.pending:
            return
        if self.moderator is not None:
            self._moderate()
        check_chunk(self.runner, self.row_columns, [line for _, _, line in self.pending if not line.reasons])
        self.gate_columns.add_chunk(line for _, _, line in self.pending)
        accepted_tokens: list[int] = []
        for source, data, line in self.pending:
            if line.reasons:
                self.quarantine(source, line.line_no, data[line.start : line.end], line.reasons)
                continue
            self.per_source[source].accepted += 1
            accepted_tokens.append(line.n_tokens)
            if self.keep_examples:
                assert line.example is not None
                self.accepted.append(
                    AcceptedExample(source, line.line_no, line.example, line.hash, line.n_tokens)
                )
        self.accepted_tokens.append(accepted_tokens)
        self.pending = []

    def _moderate(self) -> None:
        """Add ``moderation_flagged`` to the pending candidates the moderation endpoint flags."""
        assert self.moderator is not None
        candidates = [(data, line) for _, data, line in self.pending if not line.reasons]
        verdicts = self.moderator.flagged(
            [(line.hash, data[line.start : line.end], line.n_tokens) for data, line in candidates]
        )
        model = self.settings.moderation_model
        for (_, line), categories in zip(candidates, verdicts, strict=True):
            if categories:
                flagged = f"flagged by moderation ({model}): {', '.join(categories)}"
                line.reasons.append(Reason("moderation_flagged", flagged))

    def quarantine(self, source: str, line_no: int, data: bytes, reasons: list[Reason]) -> None:
        self.per_source[source].quarantined += 1
        self.by_reason.update(reason.code for reason in reasons)
        for reason in reasons:
            if reason.code not in self.reason_examples:
                self.reason_examples[reason.code] = reason_example(reason)
        if is_duplicate(reasons):
            self.duplicates += 1
        line = QuarantinedLine(source, line_no, data.decode("utf-8", errors="replace"), reasons)
        if self.sink is not None:
            self.sink(line)
        else:
            self.quarantined.append(line)

    def result(
        self,
        base_model: str,
        training: TrainingSettings | None,
        data_docs_dir: Path | None,
        new_examples_gate: bool,
    ) -> BatchResult:
        """The gates and the result of the batch, once every line is taken and flushed."""
        gates, docs_index = batch_gates(
            self.settings,
            self.runner,
            self.gate_columns,
            accepted=sum(c.accepted for c in self.per_source.values()),
            lines_read=sum(c.lines_read for c in self.per_source.values()),
            quarantined=sum(c.quarantined for c in self.per_source.values()),
            duplicates=self.duplicates,
            data_docs_dir=data_docs_dir,
            new_examples_gate=new_examples_gate,
        )
        tokens = self.accepted_tokens.array()
        n_epochs = training.n_epochs if training is not None else "auto"
        estimate = estimate_cost(tokens.tolist(), base_model, self.settings, n_epochs=n_epochs)
        return BatchResult(
            accepted=self.accepted,
            quarantined=self.quarantined,
            per_source=self.per_source,
            by_reason=dict(self.by_reason),
            reason_examples=dict(self.reason_examples),
            gates=gates,
            token_stats=_token_stats(tokens),
            cost_estimate_usd=None if estimate.usd is None else round(estimate.usd, 4),
            cost=asdict(estimate),
            data_docs_index=docs_index,
        )


def _token_stats(tokens: np.ndarray[Any, Any]) -> dict[str, float]:
    if not len(tokens):
        return {"count": 0, "total": 0}
    return {
        "count": len(tokens),
        "total": int(tokens.sum()),
        "mean": round(float(tokens.mean()), 2),
        "min": int(tokens.min()),
        "p50": float(np.percentile(tokens, 50)),
        "p95": float(np.percentile(tokens, 95)),
        "max": int(tokens.max()),
    }


def validate_batch(
    sources: Iterable[tuple[str, Iterable[bytes]]],
    settings: ValidationSettings,
    *,
    base_model: str,
    known_hashes: Container[str] = frozenset(),
    known_near_keys: Container[str] = frozenset(),
    eval_prompts: Container[str] = frozenset(),
    special_tokens: frozenset[str] | None = None,
    training: TrainingSettings | None = None,
    data_docs_dir: Path | None = None,
    keep_examples: bool = True,
    quarantine_sink: Callable[[QuarantinedLine], None] | None = None,
    new_examples_gate: bool = True,
    moderator: Moderator | None = None,
) -> BatchResult:
    """Validate every source and decide the batch gates.

    ``keep_examples=False`` keeps no accepted examples in the result (counts and statistics
    only); with a ``quarantine_sink`` the quarantined lines go to it instead of the result.
    Together they keep memory bounded on very large batches. ``known_hashes`` holds
    ``example_hash`` values of the curated data and ``known_near_keys`` its
    ``near_duplicate_key`` values; ``eval_prompts`` holds ``normalise_prompt`` values of the
    evaluation items (it is sent to the worker processes, so it must pickle: a set is best).
    ``special_tokens`` are the strings the base model's tokenizer reads as special tokens (a line
    holding one is quarantined); None means those of the OpenAI families.
    With ``data_docs_dir`` the Data Docs of the batch-level checks are built there and
    ``BatchResult.data_docs_index`` is their index.html. ``new_examples_gate=False`` skips the
    ``min_new_examples`` gate (the nightly run counts new examples at plan time instead).
    With a ``moderator`` each candidate example goes through the moderation pre-check
    (``moderation``), chunk by chunk, before the row expectations.
    """
    validator = _BatchValidator(
        settings, known_hashes, known_near_keys, keep_examples, quarantine_sink, moderator
    )
    config = _check_config(settings, base_model, eval_prompts, special_tokens, keep_examples=keep_examples)
    checker = LineChecker(config)
    with (
        _automatic_gc_paused(),
        OrderedChecks(checker, worker_count(settings), settings.parallel_min_lines) as checks,
    ):
        for source, chunks in sources:
            validator.per_source.setdefault(source, SourceCounts())
            for item in iter_line_blocks(chunks, max_line_bytes=settings.max_line_bytes):
                for done in checks.submit(source, item):
                    validator.take_block(*done)
        for done in checks.drain():
            validator.take_block(*done)
    validator.flush()
    result = validator.result(base_model, training, data_docs_dir, new_examples_gate)
    logger.debug(
        "validated %d lines: %d accepted, %d quarantined, gates %s",
        result.lines_read,
        result.n_accepted,
        result.n_quarantined,
        "passed" if result.passed else "FAILED",
    )
    return result
