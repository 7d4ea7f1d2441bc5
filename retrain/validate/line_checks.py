"""The per-line checks of a batch: everything that depends on one line alone.

A ``LineBlock`` (consecutive lines of one source, from ``jsonl_reader.iter_line_blocks``) goes
in, a ``CheckedBlock`` comes out: for every non-blank line the JSON parse, the data format
(``chat_format``), the token count (``tokens``), the secret scan, the eval-leak check, the
dedup keys and the GX feature columns. The checks are a pure function of the block, so
``validation`` runs them in worker processes on large batches; this module is what those
workers import, so it keeps its imports light (no pydantic-settings, numpy or GX).

The common shape of a chat example (``messages`` only: system, developer, user and assistant
turns with non-blank string content, an optional string ``name``, assistant ``weight`` 0, 1
or null, one trainable turn at least) takes a fast path, ``plain_chat``: one pass over the
messages gives what ``check_example``, ``count_example``, ``feature_row``, ``example_hash``,
``near_duplicate_key`` and ``prompt_first_word`` would (tests hold them equal). Everything else
goes through the pydantic models, which stay the source of truth: the fast path only ever
accepts, it never produces a reason of its own.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Callable, Collection, Container, Sized
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson

from retrain.validate.chat_format import (
    Reason,
    check_example,
    example_hash,
    example_texts,
    near_duplicate_key,
    near_text,
    normalise_prompt,
    normalise_text,
    prompt_first_word,
)
from retrain.validate.jsonl_reader import LineBlock, RawLine, block_lines, is_blank, parse_line, rejection
from retrain.validate.tokens import (
    PER_MESSAGE,
    PER_NAME,
    REPLY_PRIMING,
    count_example,
    count_role,
    encoding_for_model,
)

__all__ = [
    "CheckConfig",
    "CheckedBlock",
    "CheckedLine",
    "Features",
    "LineChecker",
    "PlainChat",
    "feature_row",
    "feature_row_columns",
    "plain_chat",
    "rejected_line",
]

_SECRET_PATTERNS: dict[str, str] = {
    "an OpenAI API key": r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    "an AWS access key id": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "a private key block": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----",
    "a bearer token": r"(?i:\bbearer\s+)[A-Za-z0-9\-._~+/]{20,}=*",
    "a GitHub token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    "a Slack token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
}
SECRETS = {kind: re.compile(pattern) for kind, pattern in _SECRET_PATTERNS.items()}
_UNDERSCORE_HINTS = re.compile(rb"gh[pousr]_|github_pat_")
_AWS_HINT = re.compile(rb"A[KS]IA")

# The GX feature columns of one example, in feature_row_columns() order without n_tokens.
Features = tuple[int, int, str, int, int, int]


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


class PlainChat(NamedTuple):
    """What the line checks need of a plain chat example, from one pass over its messages."""

    n_tokens: int
    features: Features
    hash: str
    near_key: str
    first_word: str | None
    """``prompt_first_word`` of the messages."""


_PLAIN_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "weight"}),
}


def plain_chat(
    value: Any, encode: Callable[[str], list[int]], role_tokens: dict[str, int]
) -> PlainChat | None:
    """The facts of a plain chat example (module docstring), or None: "not decided here".

    ``encode`` gives the tokens of a text and ``role_tokens`` the token count of each role name.
    """
    if type(value) is not dict or len(value) != 1:
        return None
    messages = value.get("messages")
    if type(messages) is not list or not messages:
        return None
    trainable = False
    tokens = REPLY_PRIMING
    n_user = user_chars = assistant_chars = has_system = 0
    first_word: str | None = ""
    canonical: list[dict[str, Any]] = []
    turns: list[bytes] = []
    for message in messages:
        if type(message) is not dict:
            return None
        role = message.get("role")
        if type(role) is not str:
            return None
        allowed = _PLAIN_KEYS.get(role)
        if allowed is None or not allowed.issuperset(message):
            return None
        content = message.get("content")
        if type(content) is not str:
            return None
        text = normalise_text(content)
        if not text:
            return None
        normal: dict[str, Any] = {"content": text, "role": role}
        tokens += PER_MESSAGE + role_tokens[role] + len(encode(content))
        if "name" in message:
            name = message["name"]
            if type(name) is not str:
                return None
            normal["name"] = normalise_text(name)
            tokens += len(encode(name)) + PER_NAME
        if role == "user":
            n_user += 1
            user_chars += len(content)
            turns.append(b"user:" + near_text(content))
            if first_word == "" or (first_word is not None and not content.isascii()):
                first_word = content.split(None, 1)[0].lower() if content.isascii() else None
        elif role == "assistant":
            weight = message.get("weight")
            if weight is None:
                trainable = True
            elif type(weight) is int and weight in (0, 1):
                trainable = trainable or weight == 1
                normal["weight"] = weight
            else:
                return None
            assistant_chars += len(content)
            turns.append(b"assistant:" + near_text(content))
        else:
            has_system = 1
        canonical.append(normal)
    if not trainable:
        return None
    features = (len(messages), n_user, messages[-1]["role"], has_system, user_chars, assistant_chars)
    canonical_json = orjson.dumps({"messages": canonical}, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(canonical_json).hexdigest()
    return PlainChat(tokens, features, digest, hashlib.sha256(b"\n".join(turns)).hexdigest(), first_word)


def may_hold_secret(data: bytes) -> bool:
    """A cheap, sound prefilter over the raw line: False only if no secret pattern can match.

    Each pattern needs a literal that shows in the raw JSON unless a ``\\u`` escape hides it.
    """
    if b"\\" in data and b"\\u" in data:
        return True
    if b"_" in data and _UNDERSCORE_HINTS.search(data):
        return True
    if b"-" in data and (b"sk-" in data or b"xox" in data or b"PRIVATE KEY" in data):
        return True
    if _AWS_HINT.search(data):
        return True
    return b"bearer" in data.lower()


def _secret_reason(example: dict[str, Any], data: bytes, line_no: int) -> Reason | None:
    if not may_hold_secret(data):
        return None
    for path, text in example_texts(example):
        for kind, pattern in SECRETS.items():
            if pattern.search(text):
                return Reason("contains_secret", f"line {line_no}: {path} contains what looks like {kind}")
    return None


@dataclass(frozen=True)
class CheckConfig:
    fmt: Literal["chat", "preference"]
    base_model: str
    limit: int
    """The per-example token limit."""
    eval_prompts: Container[str]
    keep_examples: bool
    max_line_bytes: int


class CheckedLine(NamedTuple):
    """What the line checks found. ``features`` is None when the line was quarantined outright
    (unreadable, or not the data format); otherwise the line is a candidate and ``reasons`` holds
    its content problems (secret, too many tokens, eval leak), if any. ``start:end`` is the
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
        self.role_tokens = {role: count_role(role, self.encoding) for role in _PLAIN_KEYS}
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
