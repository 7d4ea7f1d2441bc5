"""Chat examples rendered for the loss: assistant turns only, weight 0 left out, tool calls kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retrain.exceptions import DataError
from retrain.train.lora.rendering import IGNORE, render_example


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


def _labelled_text(tokenizer: Any, ids: list[int], labels: list[int]) -> str:
    return str(tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != IGNORE]))


def test_only_the_assistant_turns_are_labelled(tokenizer: Any) -> None:
    example = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello world"},
            {"role": "assistant", "content": "yes"},
            {"role": "user", "content": "maybe"},
            {"role": "assistant", "content": "no"},
        ]
    }
    rendered = render_example(tokenizer, example, max_length=512)
    assert len(rendered.input_ids) == len(rendered.labels)
    assert _labelled_text(tokenizer, rendered.input_ids, rendered.labels) == "yes<|im_end|>\nno<|im_end|>\n"
    full = tokenizer.apply_chat_template(example["messages"], tokenize=False)
    assert tokenizer.decode(rendered.input_ids) == full


def test_a_weight_zero_turn_is_left_out_of_the_loss(tokenizer: Any) -> None:
    example = {
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "wrong", "weight": 0},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "right", "weight": 1},
        ]
    }
    rendered = render_example(tokenizer, example, max_length=512)
    assert _labelled_text(tokenizer, rendered.input_ids, rendered.labels) == "right<|im_end|>\n"


def test_tool_calls_are_rendered_and_learned_when_the_template_ignores_them(tokenizer: Any) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "fox"}'}}
    example = {
        "messages": [
            {"role": "user", "content": "find the fox"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "the quick brown fox"},
            {"role": "assistant", "content": "the fox is brown"},
        ]
    }
    rendered = render_example(tokenizer, example, max_length=512)
    labelled = _labelled_text(tokenizer, rendered.input_ids, rendered.labels)
    assert labelled == json.dumps({"tool_calls": [call]}) + "<|im_end|>\nthe fox is brown<|im_end|>\n"
    assert "the quick brown fox" in tokenizer.decode(rendered.input_ids)


def test_examples_are_cut_to_max_length(tokenizer: Any) -> None:
    example = {
        "messages": [{"role": "user", "content": "hello " * 50}, {"role": "assistant", "content": "yes"}]
    }
    rendered = render_example(tokenizer, example, max_length=16)
    assert len(rendered.input_ids) == len(rendered.labels) == 16


def test_a_template_that_is_not_prefix_stable_is_refused(tokenizer: Any) -> None:
    class Reversed:
        chat_template = tokenizer.chat_template

        def apply_chat_template(self, messages: list[dict[str, Any]], **options: Any) -> str:
            return str(tokenizer.apply_chat_template(list(reversed(messages)), **options))

        def __call__(self, text: str, **options: Any) -> Any:
            return tokenizer(text, **options)

    example = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]}
    with pytest.raises(DataError, match="prefix by prefix"):
        render_example(Reversed(), example, max_length=64, where="train.jsonl line 3")
