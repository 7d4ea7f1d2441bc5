"""The feature columns of an example: the derived values the suite's row expectations check.

``feature_row`` computes them from any valid example; ``plain_chat`` gives the same for a plain
chat example from its one pass over the messages, as a ``Features`` tuple.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Features", "feature_row", "feature_row_columns"]

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
