"""The fast path of the line checks for the common shape of a chat example.

A plain chat example has ``messages`` only: system, developer, user and assistant turns with
non-blank string content, an optional string ``name``, assistant ``weight`` 0, 1 or null, one
trainable turn at least. For it one pass over the messages gives what ``check_example``,
``count_example``, ``feature_row``, ``example_hash``, ``near_duplicate_key`` and
``prompt_first_word`` would (tests hold them equal). Everything else goes through the pydantic
models, which stay the source of truth: the fast path only ever accepts, it never produces a
reason of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from retrain.validate.canonical import near_text, normalise_text
from retrain.validate.features import Features
from retrain.validate.tokens import PER_MESSAGE, PER_NAME, REPLY_PRIMING

__all__ = ["PLAIN_ROLES", "PlainChat", "plain_chat"]


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
PLAIN_ROLES = tuple(_PLAIN_KEYS)
"""The roles a plain chat example may hold."""


def _plain_message(message: Any) -> dict[str, Any] | None:
    """The normalised form of one plain message (as ``example_hash`` normalises it), or None
    when the message is not plain."""
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
    if "name" in message:
        name = message["name"]
        if type(name) is not str:
            return None
        normal["name"] = normalise_text(name)
    weight = message.get("weight")
    if weight is not None:
        if type(weight) is not int or weight not in (0, 1):
            return None
        normal["weight"] = weight
    return normal


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
        normal = _plain_message(message)
        if normal is None:
            return None
        role = normal["role"]
        content = message["content"]
        tokens += PER_MESSAGE + role_tokens[role] + len(encode(content))
        if "name" in normal:
            tokens += len(encode(message["name"])) + PER_NAME
        if role == "user":
            n_user += 1
            user_chars += len(content)
            turns.append(b"user:" + near_text(content))
            if first_word == "" or (first_word is not None and not content.isascii()):
                first_word = content.split(None, 1)[0].lower() if content.isascii() else None
        elif role == "assistant":
            trainable = trainable or normal.get("weight") != 0
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
