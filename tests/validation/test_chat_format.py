from __future__ import annotations

import hashlib
from typing import Any

import pytest

from retrain.validate.canonical import example_hash, near_duplicate_key, normalise_prompt
from retrain.validate.chat_format import check_example

from .conftest import chat

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def _codes(value: dict[str, Any], fmt: str = "chat") -> list[str]:
    return [reason.code for reason in check_example(value, fmt, 7)]  # type: ignore[arg-type]


def test_valid_examples() -> None:
    assert _codes(chat("hi", "hello")) == []
    full = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": "find x", "name": "ann"},
            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "x is 1"},
            {"role": "assistant", "content": "x is 1", "weight": 1},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "content": "bye", "weight": 0},
        ],
        "tools": TOOLS,
        "parallel_tool_calls": False,
    }
    assert _codes(full) == []
    legacy = {
        "messages": [
            {"role": "user", "content": "find x"},
            {"role": "assistant", "function_call": {"name": "lookup", "arguments": "{}"}},
            {"role": "function", "name": "lookup", "content": "1"},
            {"role": "assistant", "content": "1"},
        ],
        "functions": [{"name": "lookup"}],
    }
    assert _codes(legacy) == []


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({"messages": [{"role": "robot", "content": "x"}]}, "bad_role"),
        ({"messages": [{"content": "x"}]}, "missing_role"),
        ({**chat("a", "b"), "metadata": {}}, "unknown_key"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a", "weight": 1},
                    {"role": "assistant", "content": "b"},
                ]
            },
            "unknown_key",
        ),
        (chat("", "b"), "empty_content"),
        (chat("a", "   "), "empty_content"),
        ({"messages": [{"role": "user", "content": "a"}]}, "no_assistant_turn"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b", "weight": 0},
                ]
            },
            "no_trainable_turn",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b", "weight": 2},
                ]
            },
            "bad_weight",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "tool", "tool_call_id": "zz", "content": "r"},
                    {"role": "assistant", "content": "b"},
                ]
            },
            "orphan_tool_message",
        ),
        (
            {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}]},
            "bad_content",
        ),
        ({"messages": []}, "no_messages"),
        ({}, "missing_field"),
        ({"messages": "hi"}, "bad_type"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {
                        "role": "assistant",
                        "tool_calls": [{**TOOL_CALL, "function": {"name": "lookup", "arguments": "{nope"}}],
                    },
                ]
            },
            "bad_tool_arguments",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "tool_calls": [TOOL_CALL]},
                ],
                "tools": [{"type": "function", "function": {"name": "other"}}],
            },
            "unknown_tool",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "tool_calls": [TOOL_CALL, TOOL_CALL]},
                ]
            },
            "duplicate_tool_call_id",
        ),
    ],
)
def test_each_violation_has_its_code(value: dict[str, Any], code: str) -> None:
    assert code in _codes(value)


def test_messages_name_the_line_and_field() -> None:
    (reason,) = check_example({**chat("a", "b"), "metadata": {}}, "chat", 12)
    assert reason.message == "line 12: unknown key 'metadata' in the example"
    (reason,) = check_example({"messages": [{"role": "robot", "content": "x"}]}, "chat", 3)
    assert reason.message.startswith("line 3: messages[0].role is 'robot'")


def _pref(**overrides: Any) -> dict[str, Any]:
    value = {
        "input": {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    return {**value, **overrides}


def test_preference_format() -> None:
    assert _codes(_pref(), "preference") == []
    assert "identical_outputs" in _codes(
        _pref(non_preferred_output=[{"role": "assistant", "content": "good"}]), "preference"
    )
    assert "bad_role" in _codes(_pref(preferred_output=[{"role": "user", "content": "x"}]), "preference")
    assert "bad_preference_output" in _codes(_pref(preferred_output=[]), "preference")
    ends_with_assistant = {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    }
    assert "bad_preference_input" in _codes(_pref(input=ends_with_assistant), "preference")
    assert "unknown_key" in _codes(chat("a", "b"), "preference")


def test_hash_is_stable_and_normalised() -> None:
    base = chat("Hello\r\nworld", "Fine.  ")
    assert example_hash(base) == example_hash(chat("Hello\nworld", "Fine."))
    assert example_hash(base) == example_hash({"messages": list(reversed(list(reversed(base["messages"]))))})
    reordered = {"messages": [{"content": m["content"], "role": m["role"]} for m in base["messages"]]}
    assert example_hash(base) == example_hash(reordered)
    assert example_hash(base) != example_hash(chat("hello\nworld", "Fine."))
    with_null = {"messages": [*base["messages"][:-1], {**base["messages"][-1], "name": None}]}
    assert example_hash(base) == example_hash(with_null)
    # Pinned: the lead's split and dedup depend on this value never changing.
    canonical = b'{"messages":[{"content":"hi","role":"user"}]}'
    assert (
        example_hash({"messages": [{"role": "user", "content": " hi\r\n"}]})
        == hashlib.sha256(canonical).hexdigest()
    )


def test_normalise_prompt_and_near_duplicates() -> None:
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "  What IS\n\tthis? "}]
    assert normalise_prompt(messages) == "what is this?"
    assert near_duplicate_key(chat("What is THIS?", "A cat.")) == near_duplicate_key(
        chat("what is this", "a cat", system=None)
    )
    assert near_duplicate_key(chat("What is this?", "A cat.")) != near_duplicate_key(
        chat("What is this?", "A dog.")
    )
