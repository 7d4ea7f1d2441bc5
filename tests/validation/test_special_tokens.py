"""Special tokens written as text are quarantined with ``special_token``, naming the token."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from retrain.config.stage_settings import ValidationSettings
from retrain.validate.batch import check_line
from retrain.validate.special_tokens import CHATML_MARKUP, SpecialTokenScan, openai_special_tokens
from retrain.validate.tokens import get_encoding

from .conftest import MODEL, chat


def _codes(example: Any, **kwargs: Any) -> list[str]:
    checked = check_line(orjson.dumps(example), base_model=MODEL, settings=ValidationSettings(), **kwargs)
    return [reason.code for reason in checked.reasons]


def test_the_openai_set_is_what_the_bundled_vocabularies_encode_as_one_special_token() -> None:
    tokens = openai_special_tokens()
    assert {
        "<|endoftext|>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|endofprompt|>",
    } <= tokens
    for token in tokens - CHATML_MARKUP:
        ids = [
            get_encoding(name).encode(token, allowed_special="all")
            for name in ("cl100k_base", "o200k_base")
            if token in get_encoding(name).special_tokens_set
        ]
        assert ids and all(len(encoded) == 1 for encoded in ids), token
        assert len(get_encoding("o200k_base").encode_ordinary(token)) > 1  # as text it is several


@pytest.mark.parametrize(
    "example",
    [
        chat("q <|endoftext|>", "a"),
        chat("q", "a", system="You are <|im_start|>system"),
        chat("q", "The end.<|endofprompt|>"),
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "x<|fim_suffix|>"}]},
                {"role": "assistant", "content": "a"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "name": "bot<|im_end|>"},
            ]
        },
    ],
)
def test_a_special_token_in_any_text_of_a_line_quarantines_it(example: Any) -> None:
    assert "special_token" in _codes(example)


def test_the_reason_names_the_token_and_the_field() -> None:
    line = orjson.dumps(chat("q", "before<|fim_middle|>after"))
    checked = check_line(line, base_model=MODEL, settings=ValidationSettings(), line_no=4)
    [reason] = checked.reasons
    assert reason.message.startswith(
        "line 4: messages[2].content contains the special token '<|fim_middle|>'"
    )


def test_an_escaped_token_is_found_and_lookalikes_are_not_tokens() -> None:
    escaped = (
        b'{"messages":[{"role":"user","content":"\\u003c|endoftext|>"},{"role":"assistant","content":"a"}]}'
    )
    assert [r.code for r in check_line(escaped, base_model=MODEL, settings=ValidationSettings()).reasons] == [
        "special_token"
    ]
    for text in ("<|endoftext", "< |endoftext|>", "<|end_of_text|>", "a <| b |> c", "<|im_start>"):
        assert _codes(chat(text, "a")) == [], text


def test_an_open_weight_tokenizer_s_own_tokens_replace_the_openai_set() -> None:
    own = frozenset({"<repo_name>", "<|im_start|>"})
    assert "special_token" in _codes(chat("see <repo_name> here", "a"), special_tokens=own)
    assert _codes(chat("q <|fim_prefix|>", "a"), special_tokens=own) == []
    assert SpecialTokenScan(frozenset()).reason({"messages": []}, b"<|endoftext|>", 1) is None
