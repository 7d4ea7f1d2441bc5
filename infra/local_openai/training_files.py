"""Reading and checking uploaded training files the way the real service does.

Chat files hold ``{"messages": [...]}`` per line; preference (DPO) files hold ``{"input":
{"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}``. A file must
have at least ten valid examples, each with at least one assistant turn.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import orjson

from local_openai.learner import Pair, pairs_from_chat

__all__ = ["MIN_EXAMPLES", "InvalidFile", "count_tokens", "read_pairs"]

MIN_EXAMPLES = 10
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_TOKEN = re.compile(r"\w+|[^\w\s]")


class InvalidFile(Exception):
    """The file cannot be trained on; the message says which example and why."""


def count_tokens(text: str) -> int:
    """An approximate token count (words and punctuation marks)."""
    return len(_TOKEN.findall(text))


def _check_messages(messages: Any, where: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidFile(f"{where}: 'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidFile(f"{where}, message {i}: must be an object")
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidFile(f"{where}, message {i}: unrecognized role {role!r}")
        content = message.get("content")
        has_calls = role == "assistant" and (message.get("tool_calls") or message.get("function_call"))
        if not has_calls and (not isinstance(content, str) or not content.strip()):
            raise InvalidFile(f"{where}, message {i}: missing or empty 'content'")


def _example_pairs(record: Any, where: str, method: str) -> list[Pair]:
    if not isinstance(record, dict):
        raise InvalidFile(f"{where}: each line must be a JSON object")
    if method == "dpo":
        prompt = record.get("input")
        preferred = record.get("preferred_output")
        if (
            not isinstance(prompt, dict)
            or not isinstance(preferred, list)
            or not record.get("non_preferred_output")
        ):
            raise InvalidFile(f"{where}: needs 'input', 'preferred_output' and 'non_preferred_output'")
        messages = [*prompt.get("messages", []), *preferred[-1:]]
    else:
        if "messages" not in record:
            raise InvalidFile(f"{where}: missing 'messages'")
        messages = record["messages"]
    _check_messages(messages, where)
    if not any(m.get("role") == "assistant" for m in messages):
        raise InvalidFile(f"{where}: no assistant message to learn from")
    return pairs_from_chat(messages)


def read_pairs(path: Path, *, method: Literal["supervised", "dpo"]) -> tuple[list[Pair], int]:
    """The training pairs in a JSONL file and its token count; raises InvalidFile."""
    pairs: list[Pair] = []
    tokens = 0
    examples = 0
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidFile(f"{where}: not valid JSON ({exc})") from exc
        found = _example_pairs(record, where, method)
        pairs.extend(found)
        tokens += sum(count_tokens(p.question) + count_tokens(p.answer) for p in found)
        examples += 1
    if examples < MIN_EXAMPLES:
        raise InvalidFile(f"the file has {examples} example(s); at least {MIN_EXAMPLES} are required")
    return pairs, tokens
