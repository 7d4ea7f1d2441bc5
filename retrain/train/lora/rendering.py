"""A chat example as token ids and loss labels, through the base model's chat template.

The loss is on assistant turns only: every other token (system, user and tool messages, the
template's role headers) is labelled -100, and so is an assistant turn with ``weight: 0``. The
assistant's part of the text is found by rendering prefixes: the conversation up to the turn with
the template's generation prompt, then with the turn itself; the template must render each
prefix as the start of the next (a DataError names the example otherwise).

Tool calls go through the template when it knows them (it names ``tool_calls``); otherwise an
assistant turn's tool calls are rendered as the JSON ``{"tool_calls": [...]}`` in its content, and
a tool message's content is kept as is, so a model without tool support still learns the calls.
torch is not needed here; the tokenizer is any Hugging Face tokenizer with a chat template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from retrain.exceptions import DataError

__all__ = ["IGNORE", "RenderedExample", "prompt_ids", "render_example"]

IGNORE = -100


@dataclass(frozen=True)
class RenderedExample:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def _plain(message: Mapping[str, Any], template_knows_tools: bool) -> dict[str, Any]:
    """The message as the template renders it: tool calls in the content unless it knows them."""
    out = {key: value for key, value in message.items() if key != "weight"}
    if message.get("tool_calls") and not template_knows_tools:
        calls = {"tool_calls": message["tool_calls"]}
        text = message.get("content") or ""
        out = {"role": message["role"], "content": (text + "\n" if text else "") + json.dumps(calls)}
    if out.get("content") is None:
        out["content"] = ""
    return out


def _ids(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, *, generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _knows_tools(tokenizer: Any) -> bool:
    return "tool_calls" in str(tokenizer.chat_template or "")


def prompt_ids(tokenizer: Any, messages: Sequence[Mapping[str, Any]], tools: Any = None) -> list[int]:
    """The token ids a chat request is answered from: its messages with the generation prompt,
    rendered as training rendered them (so a model answers in the form it learned)."""
    knows_tools = _knows_tools(tokenizer)
    plain = [_plain(message, knows_tools) for message in messages]
    return _ids(tokenizer, plain, tools if knows_tools else None, generation_prompt=True)


def render_example(
    tokenizer: Any, example: Mapping[str, Any], *, max_length: int, where: str = ""
) -> RenderedExample:
    """Token ids and labels of one chat example, cut to ``max_length`` tokens."""
    knows_tools = _knows_tools(tokenizer)
    raw: Sequence[Mapping[str, Any]] = example["messages"]
    messages = [_plain(message, knows_tools) for message in raw]
    tools = example.get("tools") if knows_tools else None
    input_ids: list[int] = []
    labels: list[int] = []
    for i, message in enumerate(raw):
        if message["role"] != "assistant":
            continue
        header = _ids(tokenizer, messages[:i], tools, generation_prompt=True)
        turn = _ids(tokenizer, messages[: i + 1], tools, generation_prompt=False)
        if header[: len(input_ids)] != input_ids or turn[: len(header)] != header:
            raise DataError(
                f"the chat template does not render {where or 'an example'} prefix by prefix, so its "
                "assistant turns cannot be told apart for the loss; use a base model whose template does"
            )
        labels += [IGNORE] * (len(header) - len(input_ids))
        weight = message.get("weight", 1)
        labels += turn[len(header) :] if weight != 0 else [IGNORE] * (len(turn) - len(header))
        input_ids = turn
    full = _ids(tokenizer, messages, tools, generation_prompt=False)
    if full[: len(input_ids)] == input_ids:
        labels += [IGNORE] * (len(full) - len(input_ids))
        input_ids = full
    return RenderedExample(input_ids[:max_length], labels[:max_length])
