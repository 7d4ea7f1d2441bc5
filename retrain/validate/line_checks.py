"""The per-line checks of a batch: everything that depends on one line alone.

A ``LineBlock`` (consecutive lines of one source, from ``jsonl_reader.iter_line_blocks``) goes
in, a ``CheckedBlock`` comes out: for every non-blank line the JSON parse, the data format
(``chat_format``), the token count (``tokens``), the secret scan (``secret_scan``), special
tokens written as text (``special_tokens``), the eval-leak check, the dedup keys
(``canonical``) and the GX feature columns (``features``). The checks are a pure function of
the block, so ``batch`` runs them in worker processes
(``worker_pool``) on large batches; this module is what those workers import, so it keeps its
imports light (no pydantic-settings, numpy or GX).

The common shape of a chat example takes a fast path, ``plain_chat``, which gives in one pass
over the messages what the format check, the token count, the feature columns, the hashes and
``prompt_first_word`` would. Everything else goes through the pydantic models.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Container, Sized
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from retrain.validate.canonical import example_hash, near_duplicate_key, normalise_prompt, prompt_first_word
from retrain.validate.chat_format import check_example
from retrain.validate.features import Features, feature_row
from retrain.validate.jsonl_reader import LineBlock, RawLine, block_lines, is_blank, parse_line, rejection
from retrain.validate.plain_chat import PLAIN_ROLES, plain_chat
from retrain.validate.reason import Reason
from retrain.validate.secret_scan import secret_reason
from retrain.validate.special_tokens import SpecialTokenScan
from retrain.validate.tokens import count_example, count_role, encoding_for_model

__all__ = [
    "CheckConfig",
    "CheckedBlock",
    "CheckedLine",
    "LineChecker",
    "check_block_in_worker",
    "init_worker",
    "rejected_line",
    "worker_ready",
]


@dataclass(frozen=True)
class CheckConfig:
    fmt: Literal["chat", "preference"]
    base_model: str
    limit: int
    """The per-example token limit."""
    eval_prompts: Container[str]
    keep_examples: bool
    max_line_bytes: int
    special_tokens: frozenset[str] = frozenset()
    """Strings the base model's tokenizer reads as special tokens (``special_tokens``)."""


class CheckedLine(NamedTuple):
    """What the line checks found. ``features`` is None when the line was quarantined outright
    (unreadable, or not the data format); otherwise the line is a candidate and ``reasons`` holds
    its content problems (secret, special token, too many tokens, eval leak), if any. ``start:end`` is the
    line's raw bytes within its block's data."""

    line_no: int
    start: int
    end: int
    reasons: list[Reason]
    hash: str = ""
    near_key: str = ""
    n_tokens: int = 0
    features: Features | None = None
    example: dict[str, Any] | None = None


class CheckedBlock(NamedTuple):
    lines: list[CheckedLine]
    """One per non-blank line, in order."""
    blank_lines: int


def rejected_line(line: RawLine, max_line_bytes: int, start: int = 0) -> CheckedLine:
    """The result of a line the reader rejects whole (``jsonl_reader.rejection``)."""
    rejected = rejection(line, max_line_bytes)
    assert rejected is not None, "only for a corrupt gzip stream or a line over the limit"
    code, detail = rejected
    return CheckedLine(
        line.line_no, start, start + len(line.data), [Reason(code, f"line {line.line_no}: {detail}")]
    )


class LineChecker:
    """The per-line checks: a pure function of the block, so they can run in any process."""

    def __init__(self, config: CheckConfig) -> None:
        self.config = config
        self.encoding = encoding_for_model(config.base_model)
        self.encode = self.encoding.encode_ordinary
        self.role_tokens = {role: count_role(role, self.encoding) for role in PLAIN_ROLES}
        self.special_tokens = SpecialTokenScan(config.special_tokens)
        prompts = config.eval_prompts
        self.check_prompts = not (isinstance(prompts, Sized) and len(prompts) == 0)
        self.prompt_first_words: frozenset[str] | None = None
        if isinstance(prompts, Collection):
            self.prompt_first_words = frozenset(prompt.split(" ", 1)[0] for prompt in prompts if prompt)

    def check_block(self, block: LineBlock) -> CheckedBlock:
        lines: list[CheckedLine] = []
        blank = 0
        limit = self.config.max_line_bytes
        for line_no, start, data, size in block_lines(block, max_line_bytes=limit):
            if size > limit:
                lines.append(rejected_line(RawLine(line_no, data, True, size), limit, start))
            elif is_blank(data):
                blank += 1
            else:
                lines.append(self.check(line_no, data, start, start + len(data)))
        return CheckedBlock(lines, blank)

    def check(self, line_no: int, data: bytes, start: int = 0, end: int = 0) -> CheckedLine:
        """The checks of one non-blank line within the line limit."""
        parsed = parse_line(line_no, data)
        example = parsed.value
        if example is None:
            return CheckedLine(
                line_no, start, end, [Reason(str(parsed.code), f"line {line_no}: {parsed.detail}")]
            )
        config = self.config
        plain = plain_chat(example, self.encode, self.role_tokens) if config.fmt == "chat" else None
        if plain is not None:
            messages = example["messages"]
            n_tokens, features, digest, near, first_word = plain
        else:
            problems = check_example(example, config.fmt, line_no)
            if problems:
                return CheckedLine(line_no, start, end, problems)
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
            first_word = prompt_first_word(messages)
        reasons: list[Reason] = []
        secret = secret_reason(example, data, line_no)
        if secret:
            reasons.append(secret)
        special = self.special_tokens.reason(example, data, line_no)
        if special:
            reasons.append(special)
        if n_tokens > config.limit:
            reasons.append(
                Reason(
                    "too_many_tokens",
                    f"line {line_no}: {n_tokens:,} tokens, over the {config.limit:,}-token example limit",
                )
            )
        if self.check_prompts and self._may_leak(first_word):
            prompt = normalise_prompt(messages)
            if prompt and prompt in config.eval_prompts:
                reasons.append(
                    Reason("eval_leak", f"line {line_no}: the user turns match an evaluation prompt")
                )
        return CheckedLine(
            line_no,
            start,
            end,
            reasons,
            digest,
            near,
            n_tokens,
            features,
            example if config.keep_examples else None,
        )

    def _may_leak(self, first_word: str | None) -> bool:
        """Whether the user turns can equal an eval prompt, judged by their first word."""
        if self.prompt_first_words is None or first_word is None:
            return True
        return bool(first_word) and first_word in self.prompt_first_words


_WORKER_STATE: dict[str, LineChecker] = {}  # the checker of a worker process, set by its initializer


def init_worker(config: CheckConfig) -> None:
    gc.disable()  # the checks make no reference cycles: collections would only rescan their garbage
    _WORKER_STATE["checker"] = LineChecker(config)


def worker_ready() -> bool:
    return "checker" in _WORKER_STATE


def check_block_in_worker(block: LineBlock) -> CheckedBlock:
    return _WORKER_STATE["checker"].check_block(block)
