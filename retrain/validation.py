"""Validate a night's batch of training examples: what the nightly flow and ``retrain validate`` call.

For every source (an S3 key or a file) the raw byte chunks are read line by line
(``jsonl_reader``), each line is checked against the data format (``chat_format``), counted in
tokens (``tokens``) and screened for content problems, then the survivors go through the
Great Expectations suite (``expectations``) in chunks of ``chunk_rows``. Every non-blank line
ends up either accepted or quarantined, so per source ``accepted + quarantined == lines_read``
(blank lines are not read lines; a corrupt gzip stream adds one ``bad_gzip`` line).

Content checks and their reason codes: ``contains_secret`` (API keys, AWS access keys, private
key blocks, bearer tokens, GitHub tokens; the message names the field and the kind of secret,
never the secret itself, but the raw line is kept in the quarantine as is, so treat quarantine
files as sensitive), ``too_many_tokens``, ``duplicate`` (same ``example_hash`` earlier in the
batch or among the already-curated hashes), ``near_duplicate`` (same user and assistant text
after case, whitespace and punctuation folding), ``eval_leak`` (the user turns equal an eval
prompt after ``normalise_prompt``). The first occurrence wins; later copies are quarantined.

Batch gates never raise: ``BatchResult.passed`` is False and each failing ``GateCheck`` says why.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Container, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrain.chat_format import (
    Reason,
    check_example,
    example_hash,
    example_texts,
    near_duplicate_key,
    normalise_prompt,
)
from retrain.expectations import GateCheck, SuiteRunner
from retrain.jsonl_reader import ParsedLine, read_jsonl
from retrain.settings import TrainingSettings, ValidationSettings
from retrain.tokens import count_example, encoding_for_model, estimate_cost, example_token_limit

__all__ = [
    "AcceptedExample",
    "BatchResult",
    "GateCheck",
    "QuarantinedLine",
    "Reason",
    "SourceCounts",
    "validate_batch",
]

logger = logging.getLogger(__name__)

_DUPLICATE_CODES = frozenset({"duplicate", "near_duplicate"})

_SECRET_PATTERNS: dict[str, str] = {
    "an OpenAI API key": r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    "an AWS access key id": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "a private key block": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----",
    "a bearer token": r"(?i:\bbearer\s+)[A-Za-z0-9\-._~+/]{20,}=*",
    "a GitHub token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    "a Slack token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
}
# Literal prefixes of every pattern above: a fast first pass over the raw line.
_SECRET_HINTS = re.compile(rb"sk-|AKIA|ASIA|PRIVATE KEY|[Bb]earer|BEARER|gh[pousr]_|github_pat_|xox[abposr]-")
_SECRETS = {kind: re.compile(pattern) for kind, pattern in _SECRET_PATTERNS.items()}


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
        }


@dataclass
class _Candidate:
    """A well-formed example waiting for its chunk to go through the row-level expectations."""

    source: str
    line_no: int
    data: bytes
    example: dict[str, Any]
    hash: str
    n_tokens: int
    features: dict[str, Any]
    reasons: list[Reason]


def _message_chars(message: dict[str, Any]) -> int:
    content = message.get("content")
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(str(part.get("text", ""))) for part in content if isinstance(part, dict))
    return 0


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


def _secret_reason(example: dict[str, Any], data: bytes, line_no: int) -> Reason | None:
    if not _SECRET_HINTS.search(data):
        return None
    for path, text in example_texts(example):
        for kind, pattern in _SECRETS.items():
            if pattern.search(text):
                return Reason("contains_secret", f"line {line_no}: {path} contains what looks like {kind}")
    return None


class _BatchValidator:
    def __init__(
        self,
        settings: ValidationSettings,
        base_model: str,
        known_hashes: Container[str],
        eval_prompts: Container[str],
        keep_examples: bool,
        quarantine_sink: Callable[[QuarantinedLine], None] | None,
    ) -> None:
        self.settings = settings
        self.encoding = encoding_for_model(base_model)
        self.limit = example_token_limit(base_model, settings)
        suite_path = settings.suite_path if settings.format == "chat" else settings.preference_suite_path
        self.runner = SuiteRunner(suite_path)
        self.known_hashes = known_hashes
        self.eval_prompts = eval_prompts
        self.keep_examples = keep_examples
        self.sink = quarantine_sink
        self.seen: set[int] = set()
        self.seen_near: set[int] = set()
        self.pending: list[_Candidate] = []
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

    def read_source(self, source: str, chunks: Iterable[bytes]) -> None:
        counts = self.per_source.setdefault(source, SourceCounts())
        for parsed in read_jsonl(chunks, max_line_bytes=self.settings.max_line_bytes, include_blank=True):
            if parsed.blank:
                counts.blank_lines += 1
                continue
            counts.lines_read += 1
            self.take(source, parsed)
            if len(self.pending) >= self.settings.chunk_rows:
                self.flush()

    def take(self, source: str, parsed: ParsedLine) -> None:
        line_no = parsed.line_no
        if parsed.value is None:
            reason = Reason(str(parsed.code), f"line {line_no}: {parsed.detail}")
            self.quarantine(source, line_no, parsed.data, [reason])
            return
        example = parsed.value
        reasons = check_example(example, self.settings.format, line_no)
        if reasons:
            self.quarantine(source, line_no, parsed.data, reasons)
            return
        n_tokens = count_example(example, self.encoding)
        digest = example_hash(example)
        candidate = _Candidate(
            source, line_no, parsed.data, example, digest, n_tokens, feature_row(example, n_tokens), []
        )
        self.screen(candidate)
        if not self.keep_examples:
            candidate.example = {}  # only the features and raw bytes are needed from here on
        self.pending.append(candidate)

    def screen(self, candidate: _Candidate) -> None:
        line_no, example, reasons = candidate.line_no, candidate.example, candidate.reasons
        secret = _secret_reason(example, candidate.data, line_no)
        if secret:
            reasons.append(secret)
        if candidate.n_tokens > self.limit:
            reasons.append(
                Reason(
                    "too_many_tokens",
                    f"line {line_no}: {candidate.n_tokens:,} tokens, "
                    f"over the {self.limit:,}-token example limit",
                )
            )
        messages = example["input"]["messages"] if "input" in example else example["messages"]
        prompt = normalise_prompt(messages)
        if prompt and prompt in self.eval_prompts:
            reasons.append(Reason("eval_leak", f"line {line_no}: the user turns match an evaluation prompt"))
        if reasons:
            return
        exact = int(candidate.hash[:16], 16)
        near = int(near_duplicate_key(example)[:16], 16)
        if candidate.hash in self.known_hashes:
            reasons.append(
                Reason("duplicate", f"line {line_no}: this example is already in the curated data")
            )
        elif exact in self.seen:
            reasons.append(
                Reason("duplicate", f"line {line_no}: an identical example came earlier in the batch")
            )
        elif near in self.seen_near:
            reasons.append(
                Reason(
                    "near_duplicate",
                    f"line {line_no}: same user and assistant text as an earlier example "
                    "(ignoring case, spacing and punctuation)",
                )
            )
        self.seen.add(exact)
        self.seen_near.add(near)

    def flush(self) -> None:
        if not self.pending:
            return
        import pandas as pd

        clean = [c for c in self.pending if not c.reasons]
        frame = pd.DataFrame([c.features for c in clean], columns=list(feature_row_columns()))
        for position, reasons in self.runner.check_rows(frame).items():
            clean[position].reasons.extend(
                Reason(
                    r.code,
                    f"line {clean[position].line_no}: fails {r.code}"
                    + (f" ({r.message})" if r.message else ""),
                )
                for r in reasons
            )
        kept: list[_Candidate] = []
        for candidate in self.pending:
            is_duplicate = any(r.code in _DUPLICATE_CODES for r in candidate.reasons)
            if is_duplicate or not candidate.reasons:
                kept.append(candidate)
            if candidate.reasons:
                self.quarantine(candidate.source, candidate.line_no, candidate.data, candidate.reasons)
                continue
            self.per_source[candidate.source].accepted += 1
            if self.keep_examples:
                self.accepted.append(
                    AcceptedExample(
                        candidate.source,
                        candidate.line_no,
                        candidate.example,
                        candidate.hash,
                        candidate.n_tokens,
                    )
                )
        self.accepted_tokens.append(np.array([c.n_tokens for c in kept if not c.reasons], dtype=np.int64))
        self.batch_columns["n_tokens"].append(np.array([c.n_tokens for c in kept], dtype=np.int64))
        self.batch_columns["has_system"].append(
            np.array([c.features["has_system"] for c in kept], dtype=np.int8)
        )
        self.batch_columns["is_duplicate"].append(np.array([bool(c.reasons) for c in kept], dtype=np.int8))
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

    def gates(self, accepted: int, lines_read: int, data_docs_dir: Path | None) -> list[GateCheck]:
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
        checks += self.runner.check_batch(frame, data_docs_dir)
        return checks


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
    ``example_hash`` values of the curated data, ``eval_prompts`` holds ``normalise_prompt``
    values of the evaluation items.
    """
    validator = _BatchValidator(
        settings, base_model, known_hashes, eval_prompts, keep_examples, quarantine_sink
    )
    for source, chunks in sources:
        validator.read_source(source, chunks)
    validator.flush()
    accepted = sum(c.accepted for c in validator.per_source.values())
    lines_read = sum(c.lines_read for c in validator.per_source.values())
    gates = validator.gates(accepted, lines_read, data_docs_dir)
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
    )
    logger.info(
        "validated %d lines: %d accepted, %d quarantined, gates %s",
        lines_read,
        accepted,
        result.n_quarantined,
        "passed" if result.passed else "FAILED",
    )
    return result
