"""The canonical form of an example: what deduplication, the split and the eval-leak check compare.

``normalise_text`` is the text normalisation; ``example_hash`` the exact identity of an example
(every string normalised, null keys dropped, canonical JSON); ``near_duplicate_key`` the identity
of what it says (user and assistant text, case, whitespace and punctuation folded);
``normalise_prompt`` the form of its user turns the eval-leak check compares, with
``prompt_first_word`` a cheap first filter for it. Other stages rely on these definitions (the
curated data stores both keys), so they must stay stable across runs and hosts.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

__all__ = [
    "example_hash",
    "near_duplicate_key",
    "near_text",
    "normalise_prompt",
    "normalise_text",
    "prompt_first_word",
]

_LINE_END = re.compile(r"\r\n?")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


def normalise_text(text: str) -> str:
    """NFC, CRLF/CR -> LF, no trailing spaces on lines, no leading/trailing whitespace."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = _LINE_END.sub("\n", text)
    if "\n" in text and (" \n" in text or "\t\n" in text):
        text = _TRAILING_SPACE.sub("\n", text)
    return text.strip()


def _normalise_value(value: Any) -> Any:
    kind = type(value)  # exact JSON types first: the common case, and cheaper than isinstance
    if kind is str:
        return normalise_text(value)
    if kind is dict:
        return {key: _normalise_value(item) for key, item in value.items() if item is not None}
    if kind is list:
        return [_normalise_value(item) for item in value]
    if kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, list):
        return [_normalise_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _normalise_value(item) for key, item in value.items() if item is not None}
    return value


def example_hash(example: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the normalised example. Stable across runs and hosts.

    Normalisation: every string through ``normalise_text`` (NFC, LF line endings, trailing
    spaces dropped, ends stripped); keys whose value is null dropped (``"content": null`` equals a
    missing content); everything else kept as is (list order matters). Canonical JSON: orjson,
    compact, keys sorted, UTF-8 (non-ASCII not escaped).
    """
    canonical = orjson.dumps(_normalise_value(example), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _fold(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.casefold().split())


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _conversation(example: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "input" in example:
        return [*example["input"].get("messages", []), *example.get("preferred_output", [])]
    messages: list[Mapping[str, Any]] = example.get("messages", [])
    return messages


def normalise_prompt(messages: Iterable[Mapping[str, Any]]) -> str:
    """The user turns joined by newlines, NFKC, case-folded, whitespace runs folded to one space.

    The eval-leak check compares this for a training example with the same for each eval item.
    """
    return _fold("\n".join(_message_text(m) for m in messages if m.get("role") == "user"))


def prompt_first_word(messages: Iterable[Mapping[str, Any]]) -> str | None:
    """The first word of ``normalise_prompt(messages)``, cheaply; None when only the full fold can tell.

    For ASCII user turns the fold is lower-casing plus whitespace folding, so the first word is
    the first whitespace-separated word, lower-cased ("" when there is none). A prompt can only
    equal an eval prompt whose first word is the same: a cheap filter before the full fold.
    """
    joined = "\n".join(_message_text(m) for m in messages if m.get("role") == "user")
    if not joined.isascii():
        return None
    words = joined.split(None, 1)
    return words[0].lower() if words else ""


_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def _ascii_fold_table() -> bytes:
    """bytes.translate table giving, for ASCII text, what ``_fold(_PUNCTUATION.sub(" ", text))`` gives.

    Word characters stay (upper case lowered, as casefold does for ASCII); every other byte
    becomes a space: punctuation is replaced by a space anyway, and the whitespace ``str.split``
    knows (including \\x1c-\\x1f, which ``bytes.split`` does not) only separates words.
    """
    table = bytearray(b" " * 256)
    for code in range(128):
        char = chr(code)
        if char.isalnum() or char == "_":
            table[code] = ord(char.lower())
    return bytes(table)


_ASCII_FOLD = _ascii_fold_table()


def near_text(text: str) -> bytes:
    """One turn's text as ``near_duplicate_key`` folds it: case, whitespace and punctuation."""
    if text.isascii():
        # After the translation the only whitespace left is b" ": folding runs of it and
        # stripping the ends is what split-and-join does, without a bytes object per word.
        folded = text.encode().translate(_ASCII_FOLD)
        while b"  " in folded:
            folded = folded.replace(b"  ", b" ")
        return folded.strip(b" ")
    return _fold(_PUNCTUATION.sub(" ", text)).encode()


def near_duplicate_key(example: Mapping[str, Any]) -> str:
    """SHA-256 of the user and assistant text, case/whitespace/punctuation folded.

    Two examples with the same key say the same thing with different casing, spacing or
    punctuation (system prompts and tools are ignored). The key is the hash of the lines
    ``role:folded text`` joined by newlines, where folded text is
    ``_fold(_PUNCTUATION.sub(" ", text))`` (ASCII text takes an equivalent byte-level path).
    """
    turns = [
        f"{role}:".encode() + near_text(_message_text(m))
        for m in _conversation(example)
        if (role := m.get("role")) in ("user", "assistant")
    ]
    return hashlib.sha256(b"\n".join(turns)).hexdigest()
