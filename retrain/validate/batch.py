"""Validate a night's batch of training examples: what the nightly flow and ``retrain validate`` call.

For every source (an S3 key or a file) the raw byte chunks are grouped into blocks of whole
lines (``jsonl_reader.iter_line_blocks``) and each block goes through the line checks
(``line_checks``): everything that depends on one line alone (JSON parsing, the data format
(``chat_format``), token counts (``tokens``), the secret scan, the eval-leak check, the hashes
and the GX feature columns). Those checks are pure, so once a batch reaches
``parallel_min_lines`` lines the blocks go to worker processes (``workers``): forked when this
process runs no other thread, spawned otherwise (so a threaded caller, such as a flow run,
passes on no lock held by another thread). Results are consumed strictly in line order and
the GX chunks hold exactly ``chunk_rows`` candidates, so the outcome depends neither on the
number of workers nor on block or chunk sizes. The parent keeps what depends on the whole
batch: duplicate detection, the Great Expectations suite (``expectations``), the counts and
the gates.
Every non-blank line ends up either accepted or quarantined, so per source
``accepted + quarantined == lines_read`` (blank lines are not read lines; a corrupt gzip stream
adds one ``bad_gzip`` line).

Content checks and their reason codes: ``contains_secret`` (API keys, AWS access keys, private
key blocks, bearer tokens, GitHub and Slack tokens; the message names the field and the kind of
secret, never the secret itself, but the raw line is kept in the quarantine as is, so treat
quarantine files as sensitive), ``too_many_tokens``, ``duplicate`` (same ``example_hash`` earlier
in the batch or among ``known_hashes``, the curated data), ``near_duplicate`` (same
``near_duplicate_key``, i.e. the same user and assistant text after case, whitespace and
punctuation folding, earlier in the batch or among ``known_near_keys``), ``eval_leak`` (the user
turns equal an eval prompt after ``normalise_prompt``). The first occurrence wins; later copies
are quarantined.

Memory stays bounded: per accepted example only two 8-byte dedup keys and three small gate
columns are kept (plus the example itself with ``keep_examples``); a block of raw lines (about
256 KB) is kept only until the GX chunk of its last candidate line is checked.

Batch gates never raise: ``BatchResult.passed`` is False and each failing ``GateCheck`` says why.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import threading
import types
from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Iterator, Sized
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np

from retrain.config.settings import TrainingSettings, ValidationSettings
from retrain.exceptions import ConfigError
from retrain.validate.expectations import GateCheck, SuiteRunner
from retrain.validate.features import feature_row_columns
from retrain.validate.jsonl_reader import LineBlock, RawLine, iter_line_blocks
from retrain.validate.line_checks import (
    CheckConfig,
    CheckedBlock,
    CheckedLine,
    LineChecker,
    check_block_in_worker,
    init_worker,
    rejected_line,
    worker_ready,
)
from retrain.validate.reason import Reason
from retrain.validate.tokens import estimate_cost, example_token_limit

__all__ = [
    "BATCH_COLUMNS",
    "AcceptedExample",
    "BatchResult",
    "GateCheck",
    "QuarantinedLine",
    "Reason",
    "SourceCounts",
    "check_line",
    "load_suite",
    "validate_batch",
]

logger = logging.getLogger(__name__)

_DUPLICATE_CODES = frozenset({"duplicate", "near_duplicate"})
_MAX_WORKERS = 8
# The columns batch-level expectations can read (kept for every accepted example of the batch).
BATCH_COLUMNS = ("n_tokens", "has_system", "is_duplicate")


@dataclass
class AcceptedExample:
    source: str
    line_no: int
    example: dict[str, Any]
    hash: str
    n_tokens: int


@dataclass
class QuarantinedLine:
    """A line that will not be trained on; ``raw`` is its text as read (may hold a secret)."""

    source: str
    line_no: int
    raw: str
    reasons: list[Reason]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line_no": self.line_no,
            "reasons": [asdict(reason) for reason in self.reasons],
            "raw": self.raw,
        }


@dataclass
class SourceCounts:
    lines_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    blank_lines: int = 0


@dataclass
class BatchResult:
    accepted: list[AcceptedExample]
    quarantined: list[QuarantinedLine]
    per_source: dict[str, SourceCounts]
    by_reason: dict[str, int]
    gates: list[GateCheck]
    token_stats: dict[str, float]
    cost_estimate_usd: float | None
    cost: dict[str, Any] = field(default_factory=dict)
    data_docs_index: Path | None = None
    """The index.html of the Data Docs built for this batch (None when none were asked for or built)."""

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    @property
    def lines_read(self) -> int:
        return sum(counts.lines_read for counts in self.per_source.values())

    @property
    def n_accepted(self) -> int:
        return sum(counts.accepted for counts in self.per_source.values())

    @property
    def n_quarantined(self) -> int:
        return sum(counts.quarantined for counts in self.per_source.values())

    def failed_gates(self) -> list[GateCheck]:
        return [gate for gate in self.gates if not gate.passed]

    def summary(self) -> dict[str, Any]:
        """JSON-able summary without any example text (safe for artifacts and reports)."""
        return {
            "passed": self.passed,
            "total_lines": self.lines_read,
            "accepted": self.n_accepted,
            "quarantined": self.n_quarantined,
            "by_reason": dict(sorted(self.by_reason.items())),
            "per_source": {name: asdict(counts) for name, counts in self.per_source.items()},
            "token_stats": self.token_stats,
            "cost_estimate_usd": self.cost_estimate_usd,
            "cost": self.cost,
            "gates": [gate.to_json() for gate in self.gates],
            "data_docs_index": str(self.data_docs_index) if self.data_docs_index else None,
        }


def check_line(
    data: bytes,
    *,
    base_model: str,
    settings: ValidationSettings,
    line_no: int = 1,
    eval_prompts: Container[str] = frozenset(),
) -> CheckedLine:
    """The per-line checks of one raw line (no duplicate or GX checks: those need the batch)."""
    return LineChecker(_check_config(settings, base_model, eval_prompts, keep_examples=True)).check(
        line_no, data, 0, len(data)
    )


def _check_config(
    settings: ValidationSettings, base_model: str, eval_prompts: Container[str], *, keep_examples: bool
) -> CheckConfig:
    limit = example_token_limit(base_model, settings)
    return CheckConfig(
        settings.format, base_model, limit, eval_prompts, keep_examples, settings.max_line_bytes
    )


def _import_great_expectations() -> None:
    try:
        importlib.import_module("great_expectations")
    except Exception:  # the first GX chunk imports it again and reports the error there
        logger.debug("background import of great_expectations failed", exc_info=True)


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


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Spawn workers without re-running the caller's ``__main__`` in them.

    A spawned child normally re-imports the parent's main script, which re-runs any script
    that calls ``validate_batch`` without an ``if __name__ == "__main__"`` guard. The workers
    only need ``retrain.validate.batch``, so the main module is hidden while they start.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _start_method() -> str:
    """``fork`` when this process runs no other thread, else ``spawn``.

    A forked worker starts in milliseconds with the vocabulary already loaded; a spawned one
    imports and loads it again (about half a second). Forking is only safe while no other
    thread can hold a lock the child would inherit (logging, OpenSSL in a boto3 thread), so a
    threaded caller, such as a Prefect flow run, gets spawned workers.
    """
    if threading.active_count() == 1 and "fork" in get_all_start_methods():
        return "fork"
    return "spawn"


def _worker_count(settings: ValidationSettings) -> int:
    if settings.workers:
        return settings.workers
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, _MAX_WORKERS))


# A queued block: its source, its raw data and its checks (a worker's future, or done in-process).
_Pending = tuple[str, bytes, "Future[CheckedBlock] | CheckedBlock"]


class _OrderedChecks:
    """Runs line checks in-process or in worker processes; yields results in submission order.

    Blocks are checked in-process until the batch reaches ``start_after`` lines; then the
    workers are started, and in-process checking continues until the first worker is ready
    (with ``start_after`` 0 every block goes to the workers).
    """

    def __init__(self, checker: LineChecker, workers: int, start_after: int) -> None:
        self.checker = checker
        self.workers = workers
        self.start_after = start_after
        self.lines = 0
        self.pool: ProcessPoolExecutor | None = None
        self.warm: list[Future[bool]] = []
        self.queue: deque[_Pending] = deque()
        self.in_flight = 0
        self.worker_lines = 0

    def __enter__(self) -> _OrderedChecks:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            logger.info(
                "%d of %d lines were checked in %d worker processes",
                self.worker_lines,
                self.lines,
                self.workers,
            )

    def _start_pool(self) -> None:
        method = _start_method()
        logger.info("checking lines in %d worker processes (%s)", self.workers, method)
        self.pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=get_context(method),
            initializer=init_worker,
            initargs=(self.checker.config,),
        )
        with _main_module_hidden():  # spawned: one process per submit; forked: all at the first
            self.warm = [self.pool.submit(worker_ready) for _ in range(self.workers)]
        if "great_expectations" not in sys.modules:
            # The parent mostly waits from here on: import GX (seconds) while the workers check lines.
            threading.Thread(target=_import_great_expectations, name="import-gx", daemon=True).start()

    def _pool_ready(self) -> bool:
        """Whether to hand blocks to the pool: at once with ``start_after`` 0, else once a worker is up."""
        if self.pool is None:
            return False
        return self.start_after == 0 or any(future.done() for future in self.warm)

    def submit(self, source: str, item: LineBlock | RawLine) -> Iterator[tuple[str, bytes, CheckedBlock]]:
        """Queue one block (or one line the reader already rejected); yields every finished
        block that is next in order."""
        if isinstance(item, RawLine):
            rejected = rejected_line(item, self.checker.config.max_line_bytes)
            self.queue.append((source, item.data, CheckedBlock([rejected], 0)))
        else:
            self.lines += item.n_lines
            if self.pool is None and self.workers > 1 and self.lines >= self.start_after:
                self._start_pool()
            if self.pool is not None and self._pool_ready():
                self.queue.append((source, item.data, self.pool.submit(check_block_in_worker, item)))
                self.in_flight += 1
                self.worker_lines += item.n_lines
            else:
                self.queue.append((source, item.data, self.checker.check_block(item)))
        yield from self._pop(wait=self.in_flight > 2 * self.workers + 2)

    def drain(self) -> Iterator[tuple[str, bytes, CheckedBlock]]:
        yield from self._pop(wait=True, everything=True)

    def _pop(self, *, wait: bool, everything: bool = False) -> Iterator[tuple[str, bytes, CheckedBlock]]:
        while self.queue:
            source, data, item = self.queue[0]
            if isinstance(item, Future):
                if not (item.done() or wait):
                    return
                try:
                    checked = item.result()
                except BrokenProcessPool as exc:
                    raise ConfigError(
                        f"a validation worker process died ({exc}): set RETRAIN_VALIDATION__WORKERS=1 "
                        "to check lines in-process"
                    ) from exc
                self.in_flight -= 1
                wait = everything or self.in_flight > 2 * self.workers + 2
            else:
                checked = item
            self.queue.popleft()
            yield source, data, checked


def load_suite(settings: ValidationSettings) -> tuple[SuiteRunner, list[str]]:
    """The configured format's suite and the row columns it reads (ConfigError if it cannot run)."""
    suite_path = settings.suite_path if settings.format == "chat" else settings.preference_suite_path
    runner = SuiteRunner(suite_path)
    row_columns = runner.columns("row", feature_row_columns())
    runner.columns("batch", BATCH_COLUMNS)  # refuses a batch expectation on any other column
    return runner, row_columns


class _BatchValidator:
    """The batch-wide state: duplicate keys, the pending GX chunk, counts and gate columns."""

    def __init__(
        self,
        settings: ValidationSettings,
        known_hashes: Container[str],
        known_near_keys: Container[str],
        keep_examples: bool,
        quarantine_sink: Callable[[QuarantinedLine], None] | None,
    ) -> None:
        self.settings = settings
        self.chunk_rows = settings.chunk_rows
        self.runner, self.row_columns = load_suite(settings)
        self.known_hashes = known_hashes
        self.known_near_keys = known_near_keys
        self.check_known_near = not (isinstance(known_near_keys, Sized) and len(known_near_keys) == 0)
        self.keep_examples = keep_examples
        self.sink = quarantine_sink
        self.seen: set[int] = set()
        self.seen_near: set[int] = set()
        self.pending: list[tuple[str, bytes, CheckedLine]] = []
        self.per_source: dict[str, SourceCounts] = {}
        self.by_reason: Counter[str] = Counter()
        self.accepted: list[AcceptedExample] = []
        self.quarantined: list[QuarantinedLine] = []
        self.batch_columns: dict[str, list[np.ndarray[Any, Any]]] = {name: [] for name in BATCH_COLUMNS}
        self.accepted_tokens: list[np.ndarray[Any, Any]] = []
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
                self.screen_duplicates(line)
            self.pending.append((source, data, line))
            if len(self.pending) == self.chunk_rows:  # line by line: the outcome ignores block sizes
                self.flush()

    def screen_duplicates(self, line: CheckedLine) -> None:
        line_no = line.line_no
        exact = int(line.hash[:16], 16)
        near = int(line.near_key[:16], 16)
        reason: Reason | None = None
        if line.hash in self.known_hashes:
            reason = Reason("duplicate", f"line {line_no}: this example is already in the curated data")
        elif exact in self.seen:
            reason = Reason("duplicate", f"line {line_no}: an identical example came earlier in the batch")
        elif self.check_known_near and line.near_key in self.known_near_keys:
            reason = Reason(
                "near_duplicate",
                f"line {line_no}: same user and assistant text as an example already in the curated data "
                "(ignoring case, spacing and punctuation)",
            )
        elif near in self.seen_near:
            reason = Reason(
                "near_duplicate",
                f"line {line_no}: same user and assistant text as an earlier example "
                "(ignoring case, spacing and punctuation)",
            )
        if reason is not None:
            line.reasons.append(reason)
        self.seen.add(exact)
        self.seen_near.add(near)

    def flush(self) -> None:
        if not self.pending:
            return
        import pandas as pd

        clean = [line for _, _, line in self.pending if not line.reasons]
        columns: dict[str, Any] = {}
        for name in self.row_columns:
            if name == "n_tokens":
                columns[name] = np.fromiter(
                    (line.n_tokens for line in clean), dtype=np.int64, count=len(clean)
                )
            else:
                index = feature_row_columns().index(name)
                values = [line.features[index] for line in clean if line.features is not None]
                columns[name] = values if name == "last_role" else np.array(values, dtype=np.int64)
        frame = pd.DataFrame(columns, index=pd.RangeIndex(len(clean)))
        for position, reasons in self.runner.check_rows(frame).items():
            line = clean[position]
            line.reasons.extend(
                Reason(
                    r.code, f"line {line.line_no}: fails {r.code}" + (f" ({r.message})" if r.message else "")
                )
                for r in reasons
            )
        kept_tokens: list[int] = []
        kept_system: list[int] = []
        kept_duplicate: list[int] = []
        accepted_tokens: list[int] = []
        for source, data, line in self.pending:
            is_duplicate = any(r.code in _DUPLICATE_CODES for r in line.reasons)
            if is_duplicate or not line.reasons:
                assert line.features is not None
                kept_tokens.append(line.n_tokens)
                kept_system.append(line.features[3])
                kept_duplicate.append(int(bool(line.reasons)))
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
        self.accepted_tokens.append(np.array(accepted_tokens, dtype=np.int64))
        self.batch_columns["n_tokens"].append(np.array(kept_tokens, dtype=np.int64))
        self.batch_columns["has_system"].append(np.array(kept_system, dtype=np.int8))
        self.batch_columns["is_duplicate"].append(np.array(kept_duplicate, dtype=np.int8))
        self.pending = []

    def quarantine(self, source: str, line_no: int, data: bytes, reasons: list[Reason]) -> None:
        self.per_source[source].quarantined += 1
        self.by_reason.update(reason.code for reason in reasons)
        if any(reason.code in _DUPLICATE_CODES for reason in reasons):
            self.duplicates += 1
        line = QuarantinedLine(source, line_no, data.decode("utf-8", errors="replace"), reasons)
        if self.sink is not None:
            self.sink(line)
        else:
            self.quarantined.append(line)

    def gates(
        self, accepted: int, lines_read: int, data_docs_dir: Path | None
    ) -> tuple[list[GateCheck], Path | None]:
        import pandas as pd

        minimum = self.settings.min_new_examples
        checks = [
            GateCheck(
                "min_new_examples",
                accepted >= minimum,
                accepted,
                minimum,
                f"{accepted} accepted, at least {minimum} needed",
            )
        ]
        counted = lines_read - self.duplicates
        bad = sum(c.quarantined for c in self.per_source.values()) - self.duplicates
        rate = bad / counted if counted else 0.0
        ceiling = self.settings.max_quarantine_rate
        checks.append(
            GateCheck(
                "max_quarantine_rate",
                rate <= ceiling,
                round(rate, 6),
                ceiling,
                f"{bad} of {counted} non-duplicate lines quarantined ({rate:.1%}), "
                f"at most {ceiling:.1%} allowed",
            )
        )
        frame = pd.DataFrame({name: _concat(parts) for name, parts in self.batch_columns.items()})
        batch_checks, index = self.runner.check_batch_with_docs(frame, data_docs_dir)
        return checks + batch_checks, index


def _concat(parts: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    return np.concatenate(parts) if parts else np.array([], dtype=np.int64)


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
    training: TrainingSettings | None = None,
    data_docs_dir: Path | None = None,
    keep_examples: bool = True,
    quarantine_sink: Callable[[QuarantinedLine], None] | None = None,
) -> BatchResult:
    """Validate every source and decide the batch gates.

    ``keep_examples=False`` keeps no accepted examples in the result (counts and statistics
    only); with a ``quarantine_sink`` the quarantined lines go to it instead of the result.
    Together they keep memory bounded on very large batches. ``known_hashes`` holds
    ``example_hash`` values of the curated data and ``known_near_keys`` its
    ``near_duplicate_key`` values; ``eval_prompts`` holds ``normalise_prompt`` values of the
    evaluation items (it is sent to the worker processes, so it must pickle: a set is best).
    With ``data_docs_dir`` the Data Docs of the batch-level checks are built there and
    ``BatchResult.data_docs_index`` is their index.html.
    """
    validator = _BatchValidator(settings, known_hashes, known_near_keys, keep_examples, quarantine_sink)
    checker = LineChecker(_check_config(settings, base_model, eval_prompts, keep_examples=keep_examples))
    with (
        _automatic_gc_paused(),
        _OrderedChecks(checker, _worker_count(settings), settings.parallel_min_lines) as checks,
    ):
        for source, chunks in sources:
            validator.per_source.setdefault(source, SourceCounts())
            for item in iter_line_blocks(chunks, max_line_bytes=settings.max_line_bytes):
                for done in checks.submit(source, item):
                    validator.take_block(*done)
        for done in checks.drain():
            validator.take_block(*done)
    validator.flush()
    accepted = sum(c.accepted for c in validator.per_source.values())
    lines_read = sum(c.lines_read for c in validator.per_source.values())
    gates, docs_index = validator.gates(accepted, lines_read, data_docs_dir)
    tokens = _concat(validator.accepted_tokens)
    n_epochs = training.n_epochs if training is not None else "auto"
    estimate = estimate_cost(tokens.tolist(), base_model, settings, n_epochs=n_epochs)
    result = BatchResult(
        accepted=validator.accepted,
        quarantined=validator.quarantined,
        per_source=validator.per_source,
        by_reason=dict(validator.by_reason),
        gates=gates,
        token_stats=_token_stats(tokens),
        cost_estimate_usd=None if estimate.usd is None else round(estimate.usd, 4),
        cost=asdict(estimate),
        data_docs_index=docs_index,
    )
    logger.debug(
        "validated %d lines: %d accepted, %d quarantined, gates %s",
        lines_read,
        accepted,
        result.n_quarantined,
        "passed" if result.passed else "FAILED",
    )
    return result
