"""The fast paths agree with the definitions they shortcut, on hostile and randomised input.

The reference implementations below are the straightforward definitions (the code as it was
before the fast paths): the fast code must give exactly their results.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest

from retrain.config.stage_settings import ValidationSettings
from retrain.validate.batch import check_line
from retrain.validate.canonical import (
    example_hash,
    near_duplicate_key,
    normalise_prompt,
    normalise_text,
    prompt_first_word,
)
from retrain.validate.chat_format import check_example
from retrain.validate.features import feature_row
from retrain.validate.line_checks import CheckConfig, LineChecker
from retrain.validate.plain_chat import PlainChat, plain_chat
from retrain.validate.secret_scan import SECRETS, example_texts, may_hold_secret
from retrain.validate.tokens import count_example, get_encoding

from .conftest import MODEL, chat

# -- reference definitions ---------------------------------------------------------------------

_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def _ref_fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _ref_message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def ref_near_duplicate_key(example: Mapping[str, Any]) -> str:
    if "input" in example:
        conversation = [*example["input"].get("messages", []), *example.get("preferred_output", [])]
    else:
        conversation = example.get("messages", [])
    turns = [
        f"{m.get('role')}:{_ref_fold(_PUNCTUATION.sub(' ', _ref_message_text(m)))}"
        for m in conversation
        if m.get("role") in ("user", "assistant")
    ]
    return hashlib.sha256("\n".join(turns).encode()).hexdigest()


def ref_normalise_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\r\n?", "\n", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return text.strip()


# -- a randomised corpus of near-valid and hostile chat examples ---------------------------------

_ALPHABET = (
    [chr(c) for c in range(128)]
    + list("éÉß\u017f\u212a\u212bﬁ①²½\u00a0\u2028\u3000\u200b\u0301")
    + ["\r\n", " \n", "\t\n", "  ", "...", "<|endoftext|>", "sk-", "Bearer "]
)


def _text(rng: random.Random, ascii_only: bool = False) -> str:
    pool = _ALPHABET[:128] if ascii_only else _ALPHABET
    if rng.random() < 0.5:
        words = [rng.choice(["Hello", "WORLD", "refund", "order", "#42", "it's", "x_y"]) for _ in range(6)]
        return rng.choice([" ", ",  ", ". ", "\n", "\t"]).join(words)
    return "".join(rng.choice(pool) for _ in range(rng.randrange(0, 40)))


def _valid_chat(rng: random.Random) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.7:
        messages.append({"role": rng.choice(["system", "developer"]), "content": "Be brief " + _text(rng)})
    for _ in range(rng.randint(1, 3)):
        user: dict[str, Any] = {"role": "user", "content": "q " + _text(rng)}
        if rng.random() < 0.2:
            user["name"] = rng.choice(["ann", "Bo b", " x "])
        messages.append(user)
        reply: dict[str, Any] = {"role": "assistant", "content": "a " + _text(rng)}
        if rng.random() < 0.3:
            reply["weight"] = rng.choice([0, 1, None])
        messages.append(reply)
    if all(m.get("weight") == 0 for m in messages if m["role"] == "assistant"):
        messages[-1]["weight"] = 1
    return {"messages": messages}


_HOSTILE_VALUES: list[Any] = [
    None,
    "",
    "   ",
    0,
    1,
    2,
    True,
    False,
    1.0,
    -1,
    [],
    {},
    ["x"],
    {"a": 1},
    [{"type": "text", "text": "hi"}],
    "tool",
    "function",
    "narrator",
    "assistant",
    "user",
]


def _mutate(rng: random.Random, example: dict[str, Any]) -> dict[str, Any]:
    value = copy.deepcopy(example)
    for _ in range(rng.randint(1, 3)):
        messages = value.get("messages")
        kind = rng.randrange(7)
        if kind == 0:
            value[rng.choice(["tools", "functions", "parallel_tool_calls", "extra", "messages"])] = (
                rng.choice(_HOSTILE_VALUES)
            )
        elif isinstance(messages, list) and messages and kind in (1, 2, 3, 4):
            message = rng.choice(messages)
            if isinstance(message, dict):
                key = rng.choice(["role", "content", "name", "weight", "tool_calls", "tool_call_id", "x"])
                if kind == 1:
                    message.pop(key, None)
                else:
                    message[key] = rng.choice(_HOSTILE_VALUES)
        elif isinstance(messages, list) and kind == 5:
            if messages:
                messages.pop(rng.randrange(len(messages)))
            else:
                messages.append(rng.choice(_HOSTILE_VALUES))
        elif isinstance(messages, list):
            messages.insert(rng.randrange(len(messages) + 1), rng.choice(_HOSTILE_VALUES))
    return value


def _corpus(seed: int, n: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(n):
        example = _valid_chat(rng)
        yield example if rng.random() < 0.3 else _mutate(rng, example)


# -- tests ---------------------------------------------------------------------------------------

_CHECKER = LineChecker(CheckConfig("chat", MODEL, 65_536, frozenset(), False, 1 << 20))


def fast(value: Any) -> PlainChat | None:
    return plain_chat(value, _CHECKER.encode, _CHECKER.role_tokens)


def test_the_plain_fast_path_never_accepts_what_the_models_reject() -> None:
    plain = rejected = 0
    for example in _corpus(20261126, 4000):
        reasons = check_example(example, "chat", 1)
        if fast(example) is not None:
            plain += 1
            assert reasons == [], (example, reasons)
        elif reasons:
            rejected += 1
    assert plain > 1000 and rejected > 1000  # both sides of the decision were exercised


def test_the_plain_fast_path_rejects_each_hostile_shape_of_the_validation_corpus() -> None:
    good = chat("q", "a")
    not_plain = [
        {**good, "extra": 1},
        {**good, "tools": []},
        {"messages": []},
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]},
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "weight": True},
            ]
        },
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": ["user"], "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}, good["messages"][-1]]},
        {"messages": [{"role": "tool", "tool_call_id": "x", "content": "r"}, good["messages"][-1]]},
        [good],
    ]
    assert fast(good) is not None
    for value in not_plain:
        assert fast(value) is None, value


def test_plain_facts_equal_the_generic_definitions() -> None:
    encoding = get_encoding("o200k_base")
    checked = 0
    for example in _corpus(7, 3000):
        facts = fast(example)
        if facts is None:
            continue
        checked += 1
        assert facts.hash == example_hash(example)
        assert facts.near_key == ref_near_duplicate_key(example)
        assert facts.n_tokens == count_example(example, encoding)
        row = feature_row(example, facts.n_tokens)
        assert facts.features == tuple(row[name] for name in list(row)[:6])
        assert facts.first_word == prompt_first_word(example["messages"])
    assert checked > 500


def test_near_duplicate_key_equals_its_definition_on_every_ascii_character_and_unicode() -> None:
    for code in range(128):
        for text in (chr(code), f"a{chr(code)}b", f"{chr(code)} A {chr(code)}{chr(code)}z"):
            example = chat(text, text)
            assert near_duplicate_key(example) == ref_near_duplicate_key(example), repr(text)
    for example in _corpus(11, 2000):
        if isinstance(example.get("messages"), list) and all(
            isinstance(m, dict) for m in example["messages"]
        ):
            assert near_duplicate_key(example) == ref_near_duplicate_key(example)
    preference = {
        "input": {"messages": [{"role": "user", "content": "Straße,  ①!"}]},
        "preferred_output": [{"role": "assistant", "content": "OK..."}],
    }
    assert near_duplicate_key(preference) == ref_near_duplicate_key(preference)


def test_normalise_text_equals_its_definition() -> None:
    rng = random.Random(3)
    for _ in range(5000):
        text = _text(rng)
        assert normalise_text(text) == ref_normalise_text(text), repr(text)


def test_the_secret_prefilter_is_sound_whatever_the_json_spelling() -> None:
    rng = random.Random(5)
    secrets = [
        "sk-proj-" + "A1b2C3d4" * 5,
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "ASIA" + "ABCDEFGHIJKLMNOP",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "bEaReR " + "abcDEF0123" * 3,
        "ghs_" + "a1B2c3D4e5" * 4,
        "github_pat_" + "a1B2c3D4e5" * 3,
        "xoxb-" + "1234567890ab",
    ]
    found = 0
    for _ in range(400):
        text = _text(rng)
        if rng.random() < 0.6:
            text = text + " " + rng.choice(secrets) + " " + _text(rng, ascii_only=True)
        example = chat("Q: " + text, "Answer " + _text(rng))
        holds = any(p.search(t) for _, t in example_texts(example) for p in SECRETS.values())
        for raw in (
            orjson.dumps(example),
            json.dumps(example).encode(),
            json.dumps(example, ensure_ascii=False).encode(),
        ):
            if holds:
                assert may_hold_secret(raw), raw
        escaped = json.dumps(example).replace("sk-", "\\u0073k-").encode()
        if holds:
            assert may_hold_secret(escaped)
        found += holds
    assert 150 < found < 400
    assert not may_hold_secret(orjson.dumps(chat("What is my order status?", "It ships today.")))


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"{oops", "not_json"),
        (orjson.dumps(chat("my key is AKIAABCDEFGHIJKLMNOP", "ok")), "contains_secret"),
        (orjson.dumps({"messages": [{"role": "user", "content": "q"}]}), "no_assistant_turn"),
    ],
)
def test_check_line_reports_per_line_problems(line: bytes, code: str) -> None:
    checked = check_line(line, base_model=MODEL, settings=ValidationSettings(), line_no=9)
    assert [r.code for r in checked.reasons] == [code]
    assert checked.reasons[0].message.startswith("line 9: ")


def test_check_line_of_a_good_line_gives_its_keys() -> None:
    example = chat("What is item 3?", "Item 3 is a thing.")
    checked = check_line(orjson.dumps(example), base_model=MODEL, settings=ValidationSettings())
    assert checked.reasons == [] and checked.example == example
    assert (checked.hash, checked.near_key) == (example_hash(example), near_duplicate_key(example))
    assert checked.n_tokens == count_example(example, get_encoding("o200k_base"))


def test_prompt_first_word_is_the_first_word_of_the_normalised_prompt() -> None:
    decided = 0
    for example in _corpus(13, 3000):
        messages = example.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            continue
        first = prompt_first_word(messages)
        if first is not None:
            decided += 1
            assert first == normalise_prompt(messages).split(" ", 1)[0], messages
    assert decided > 1000
