"""Validate a night's batch of training examples: what the nightly flow and ``retrain validate`` call.

For every source (an S3 key or a file) the raw byte chunks are split into lines
(``jsonl_reader``) and the lines go, in blocks of ``_BLOCK_LINES``, through the line checks:
everything that depends on one line alone (JSON parsing, the data format (``chat_format``),
token counts (``tokens``), the secret scan, the eval-leak check, the hashes and the GX feature
columns). Those checks are pure, so once a batch reaches ``parallel_min_lines`` lines they run
in worker processes (``workers``; spawned, so nothing is inherited from a threaded parent), and
the results are consumed strictly in line order: the outcome never depends on the number of
workers. The parent keeps what depends on the whole batch: duplicate detection, the Great
Expectations suite (``expectations``) in chunks of ``chunk_rows``, the counts and the gates.
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
columns are kept (plus the example itself with ``keep_examples``); raw lines wait only until
their GX chunk is checked.

Batch gates never raise: ``BatchResult.passed`` is False and each failing ``GateCheck`` says why.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import threading
import types
from collections import Counter, deque
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Sized
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import tiktoken

from retrain.chat_format import (
    Reason,
    check_example,
    example_hash,
    example_texts,
    is_plain_chat,
    near_duplicate_key,
    normalise_prompt,
    plain_chat_keys,
    prompt_first_word,
)
from retrain.exceptions import ConfigError
from retrain.expectations import GateCheck, SuiteRunner
from retrain.jsonl_reader import is_blank, iter_raw_lines, parse_line
from retrain.settings import TrainingSettings, ValidationSettings
from retrain.tokens import (
    count_example,
    count_role,
    encoding_for_model,
    estimate_cost,
    example_token_limit,
)

__all__ = [
    "AcceptedExample",
    "BatchResult",
    "GateCheck",
    "QuarantinedLine",
    "Reason",
    "SourceCounts",
    "check_line",
    "feature_row",
    "feature_row_columns",
    "validate_batch",
]

logger = logging.getLogger(__name__)

_DUPLICATE_CODES = frozenset({"duplicate", "near_duplicate"})
_BLOCK_LINES = 1000
_MAX_WORKERS = 8

_SECRET_PATTERNS: dict[str, str] = {
    "an OpenAI API key": r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    "an AWS access key id": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "a private key block": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----",
    "a bearer token": r"(?i:\bbearer\s+)[A-Za-z0-9\-._~+/]{20,}=*",
    "a GitHub token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    "a Slack token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
}
_SECRETS = {kind: re.compile(pattern) for kind, pattern in _SECRET_PATTERNS.items()}
_UNDERSCORE_HINTS = re.compile(rb"gh[pousr]_|github_pat_")

# Per line: line_no, raw bytes, and for lines the reader already rejected its code and detail.
_Entry = tuple[int, bytes, str | None, str]
# The GX feature columns of one example, in feature_row_columns() order without n_tokens.
_Features = tuple[int, int, str, int, int, int]


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
            "gates": [asdict(gate) for gate in self.gates],
            "data_docs_index": str(self.data_docs_index) if self.data_docs_index else None,
        }


class CheckedLine(NamedTuple):
    """What the line checks found. ``features`` is None when the line was quarantined outright
    (unreadable, or not the data format); otherwise the line is a candidate and ``reasons`` holds
    its content problems (secret, too many tokens, eval leak), if any. A tuple: blocks of them
    cross process boundaries, and tuples pickle several times faster than dataclasses."""

    line_no: int
    reasons: list[Reason]
    hash: str = ""
    near_key: str = ""
    n_tokens: int = 0
    features: _Features | None = None
    example: dict[str, Any] | None = None


def _message_chars(message: dict[str, Any]) -> int:
    content = message.get("content")
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(str(part.get("text", ""))) for part in content if isinstance(part, dict))
    return 0


def feature_row_columns() -> tuple[str, ...]:
    return (
        "n_messages",
        "n_user_turns",
        "last_role",
        "has_system",
        "user_chars",
        "assistant_chars",
        "n_tokens",
    )


def feature_row(example: dict[str, Any], n_tokens: int) -> dict[str, Any]:
    """The derived columns the suite checks (for preference data: input turns, preferred output)."""
    if "input" in example:
        messages = example["input"]["messages"]
        replies = example["preferred_output"]
    else:
        messages = example["messages"]
        replies = [m for m in messages if m["role"] == "assistant"]
    return {
        "n_messages": len(messages),
        "n_user_turns": sum(m["role"] == "user" for m in messages),
        "last_role": messages[-1]["role"],
        "has_system": int(any(m["role"] in ("system", "developer") for m in messages)),
        "user_chars": sum(_message_chars(m) for m in messages if m["role"] == "user"),
        "assistant_chars": sum(_message_chars(m) for m in replies),
        "n_tokens": n_tokens,
    }


def _plain_chat_counts(messages: list[dict[str, Any]], encoding: tiktoken.Encoding) -> tuple[int, _Features]:
    """Token count and features of an ``is_plain_chat`` example in one pass over its messages.

    Equal to ``count_example`` and ``feature_row`` for that shape (tests hold them together).
    """
    tokens = 3
    n_user = user_chars = assistant_chars = has_system = 0
    encode = encoding.encode_ordinary
    for message in messages:
        role = message["role"]
        content = message["content"]
        tokens += 3 + count_role(role, encoding) + len(encode(content))
        name = message.get("name")
        if name is not None:
            tokens += len(encode(name)) + 1
        if role == "user":
            n_user += 1
            user_chars += len(content)
        elif role == "assistant":
            assistant_chars += len(content)
        else:
            has_system = 1
    features = (len(messages), n_user, messages[-1]["role"], has_system, user_chars, assistant_chars)
    return tokens, features


def _may_hold_secret(data: bytes) -> bool:
    """A cheap, sound prefilter over the raw line: False only if no secret pattern can match.

    Each pattern needs a literal that shows in the raw JSON unless a ``\\u`` escape hides it.
    """
    if b"\\u" in data:
        return True
    if b"_" in data and _UNDERSCORE_HINTS.search(data):
        return True
    if b"-" in data and (b"sk-" in data or b"xox" in data or b"PRIVATE KEY" in data):
        return True
    if b"AKIA" in data or b"ASIA" in data:
        return True
    return b"bearer" in data.lower()


def _secret_reason(example: dict[str, Any], data: bytes, line_no: int) -> Reason | None:
    if not _may_hold_secret(data):
        return None
    for path, text in example_texts(example):
        for kind, pattern in _SECRETS.items():
            if pattern.search(text):
                return Reason("contains_secret", f"line {line_no}: {path} contains what looks like {kind}")
    return None


@dataclass(frozen=True)
class _CheckConfig:
    fmt: Literal["chat", "preference"]
    base_model: str
    limit: int
    eval_prompts: Container[str]
    keep_examples: bool


class _LineChecker:
    """The per-line checks: a pure function of the line, so they can run in any process."""

    def __init__(self, config: _CheckConfig) -> None:
        self.config = config
        self.encoding = encoding_for_model(config.base_model)
        prompts = config.eval_prompts
        self.check_prompts = not (isinstance(prompts, Sized) and len(prompts) == 0)
        self.prompt_first_words: frozenset[str] | None = None
        if isinstance(prompts, Collection):
            self.prompt_first_words = frozenset(prompt.split(" ", 1)[0] for prompt in prompts if prompt)

    def _may_leak(self, messages: list[dict[str, Any]]) -> bool:
        if self.prompt_first_words is None:
            return True
        first = prompt_first_word(messages)
        return first is None or (bool(first) and first in self.prompt_first_words)

    def check_block(self, entries: list[_Entry]) -> list[CheckedLine]:
        return [self.check(*entry) for entry in entries]

    def check(self, line_no: int, data: bytes, code: str | None = None, detail: str = "") -> CheckedLine:
        if code is not None:
            return CheckedLine(line_no, [Reason(code, f"line {line_no}: {detail}")])
        parsed = parse_line(line_no, data)
        example = parsed.value
        if example is None:
            return CheckedLine(line_no, [Reason(str(parsed.code), f"line {line_no}: {parsed.detail}")])
        config = self.config
        if config.fmt == "chat" and is_plain_chat(example):
            messages = example["messages"]
            n_tokens, features = _plain_chat_counts(messages, self.encoding)
            digest, near = plain_chat_keys(example)
        else:
            problems = check_example(example, config.fmt, line_no)
            if problems:
                return CheckedLine(line_no, problems)
            messages = example["input"]["messages"] if "input" in example else example["messages"]
            n_tokens = count_example(example, self.encoding)
            row = feature_row(example, n_tokens)
            features = (
                row["n_messages"],
                row["n_user_turns"],
                row["last_role"],
                row["has_system"],
                row["user_chars"],
                row["assistant_chars"],
            )
            digest, near = example_hash(example), near_duplicate_key(example)
        reasons: list[Reason] = []
        secret = _secret_reason(example, data, line_no)
        if secret:
            reasons.append(secret)
        if n_tokens > config.limit:
            reasons.append(
                Reason(
                    "too_many_tokens",
                    f"line {line_no}: {n_tokens:,} tokens, over the {config.limit:,}-token example limit",
                )
            )
        if self.check_prompts and self._may_leak(messages):
            prompt = normalise_prompt(messages)
            if prompt and prompt in config.eval_prompts:
                reasons.append(
                    Reason("eval_leak", f"line {line_no}: the user turns match an evaluation prompt")
                )
        return CheckedLine(
            line_no,
            reasons,
            digest,
            near,
            n_tokens,
            features,
            example if config.keep_examples else None,
        )


def check_line(
    data: bytes,
    *,
    base_model: str,
    settings: ValidationSettings,
    line_no: int = 1,
    eval_prompts: Container[str] = frozenset(),
) -> CheckedLine:
    """The per-line checks of one raw line (no duplicate or GX checks: those need the batch)."""
    config = _CheckConfig(
        settings.format, base_model, example_token_limit(base_model, settings), eval_prompts, True
    )
    return _LineChecker(config).check(line_no, data)


_WORKER_STATE: dict[str, _LineChecker] = {}  # the checker of a worker process, set by its initializer


def _init_worker(config: _CheckConfig) -> None:
    _WORKER_STATE["checker"] = _LineChecker(config)


def _worker_ready() -> bool:
    return "checker" in _WORKER_STATE


def _check_block_in_worker(entries: list[_Entry]) -> list[CheckedLine]:
    return _WORKER_STATE["checker"].check_block(entries)


def _import_great_expectations() -> None:
    try:
        importlib.import_module("great_expectations")
    except Exception:  # the first GX chunk imports it again and reports the error there
        logger.debug("background import of great_expectations failed", exc_info=True)


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Spawn workers without re-running the caller's ``__main__`` in them.

    A spawned child normally re-imports the parent's main script, which re-runs any script
    that calls ``validate_batch`` without an ``if __name__ == "__main__"`` guard. The workers
    only need ``retrain.validation``, so the main module is hidden while they start.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _worker_count(settings: ValidationSettings) -> int:
    if settings.workers:
        return settings.workers
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, _MAX_WORKERS))


_Pending = tuple[str, list[_Entry], "Future[list[CheckedLine]] | list[CheckedLine]"]


class _OrderedChecks:
    """Runs line checks in-process or in worker processes; yields results in submission order.

    Blocks are checked in-process until the batch reaches ``start_after`` lines; then the
    workers are started, and in-process checking continues until the first worker is ready
    (with ``start_after`` 0 every block goes to the workers).
    """

    def __init__(self, checker: _LineChecker, workers: int, start_after: int) -> None:
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
        logger.info("checking lines in %d worker processes", self.workers)
        self.pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.checker.config,),
        )
        with _main_module_hidden():  # the pool spawns one process per submit, up to max_workers
            self.warm = [self.pool.submit(_worker_ready) for _ in range(self.workers)]
        if "great_expectations" not in sys.modules:
            # The parent mostly waits from here on: import GX (seconds) while the workers check lines.
            threading.Thread(target=_import_great_expectations, name="import-gx", daemon=True).start()

    def _pool_ready(self) -> bool:
        """Whether to hand blocks to the pool: at once with ``start_after`` 0, else once a worker is up."""
        if self.pool is None:
            return False
        return self.start_after == 0 or any(future.done() for future in self.warm)

    def submit(
        self, source: str, entries: list[_Entry]
    ) -> Iterator[tuple[str, list[_Entry], list[CheckedLine]]]:
        """Queue one block; yields every finished block that is next in order."""
        self.lines += len(entries)
        if self.pool is None and self.workers > 1 and self.lines >= self.start_after:
            self._start_pool()
        if self.pool is not None and self._pool_ready():
            self.queue.append((source, entries, self.pool.submit(_check_block_in_worker, entries)))
            self.in_flight += 1
            self.worker_lines += len(entries)
        else:
            self.queue.append((source, entries, self.checker.check_block(entries)))
        yield from self._pop(wait=self.in_flight > 2 * self.workers + 2)

    def drain(self) -> Iterator[tuple[str, list[_Entry], list[CheckedLine]]]:
        yield from self._pop(wait=True, everything=True)

    def _pop(
        self, *, wait: bool, everything: bool = False
    ) -> Iterator[tuple[str, list[_Entry], list[CheckedLine]]]:
        while self.queue:
            source, entries, item = self.queue[0]
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
            yield source, entries, checked


def _blocks(
    source: str, chunks: Iterable[bytes], counts: SourceCounts, max_line_bytes: int
) -> Iterator[list[_Entry]]:
    """Non-blank lines in blocks of _BLOCK_LINES; blank lines are only counted."""
    block: list[_Entry] = []
    for raw in iter_raw_lines(chunks, max_line_bytes=max_line_bytes):
        if raw.gzip_error is not None:
            entry: _Entry = (raw.line_no, b"", "bad_gzip", f"the gzip stream is corrupt ({raw.gzip_error})")
        elif raw.overflow:
            detail = f"{raw.size:,} bytes is over the {max_line_bytes:,}-byte line limit"
            entry = (raw.line_no, raw.data, "line_too_long", detail)
        elif is_blank(raw.data):
            counts.blank_lines += 1
            continue
        else:
            entry = (raw.line_no, raw.data, None, "")
        counts.lines_read += 1
        block.append(entry)
        if len(block) >= _BLOCK_LINES:
            yield block
            block = []
    if block:
        yield block


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
        suite_path = settings.suite_path if settings.format == "chat" else settings.preference_suite_path
        self.runner = SuiteRunner(suite_path)
        row_columns = {
            e["kwargs"]["column"] for e in self.runner.expectations("row") if "column" in e.get("kwargs", {})
        }
        self.row_columns = [name for name in feature_row_columns() if name in row_columns]
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
        self.batch_columns: dict[str, list[np.ndarray[Any, Any]]] = {
            "n_tokens": [],
            "has_system": [],
            "is_duplicate": [],
        }
        self.accepted_tokens: list[np.ndarray[Any, Any]] = []
        self.duplicates = 0

    def take_block(self, source: str, entries: list[_Entry], checked: list[CheckedLine]) -> None:
        for (_, data, _, _), line in zip(entries, checked, strict=True):
            if line.features is None:
                self.quarantine(source, line.line_no, data, line.reasons)
                continue
            if not line.reasons:
                self.screen_duplicates(line)
            self.pending.append((source, data, line))
        if len(self.pending) >= self.settings.chunk_rows:
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
                self.quarantine(source, line.line_no, data, line.reasons)
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
                f"min_new_examples: {accepted} accepted, at least {minimum} needed",
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
                f"max_quarantine_rate: {bad} of {counted} non-duplicate lines quarantined ({rate:.1%}), "
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
    config = _CheckConfig(
        settings.format, base_model, example_token_limit(base_model, settings), eval_prompts, keep_examples
    )
    checker = _LineChecker(config)
    with _OrderedChecks(checker, _worker_count(settings), settings.parallel_min_lines) as checks:
        for source, chunks in sources:
            counts = validator.per_source.setdefault(source, SourceCounts())
            for block in _blocks(source, chunks, counts, settings.max_line_bytes):
                for done in checks.submit(source, block):
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
    logger.info(
        "validated %d lines: %d accepted, %d quarantined, gates %s",
        lines_read,
        accepted,
        result.n_quarantined,
        "passed" if result.passed else "FAILED",
    )
    return result
