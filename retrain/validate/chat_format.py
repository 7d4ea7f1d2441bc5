"""The fine-tuning data formats as strict pydantic models, and their canonical form.

Two formats, chosen by ``ValidationSettings.format``:

* ``chat`` (supervised): ``{"messages": [...], "tools"?, "parallel_tool_calls"?, "functions"?}``
  with roles ``system``, ``developer``, ``user``, ``assistant``, ``tool`` and legacy
  ``function``; content a string or a list of text parts; assistant ``tool_calls`` (content
  may then be empty or null), ``weight`` 0 or 1; ``tool`` messages answer a ``tool_call_id``
  issued earlier.
* ``preference`` (DPO): ``{"input": {"messages": [...], "tools"?, ...},
  "preferred_output": [assistant message], "non_preferred_output": [assistant message]}``.

Unknown keys are rejected (``extra="forbid"``), types are strict. ``check_example`` returns every
problem as a ``Reason`` with a stable snake_case code and a message naming the line and field.

``line_checks.plain_chat`` is a hand-written fast path for the common shape (``messages``
only, plain string content, no tools): when it decides, ``check_example`` is guaranteed to
return no reasons, so the pydantic models only run for the rows it cannot decide. The models
stay the source of truth: the fast path never produces a reason of its own.

``example_hash`` and ``normalise_prompt`` define the canonical form other modules rely on for
deduplication, the train/validation split and the eval-leak check; see their docstrings.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "ChatExample",
    "PreferenceExample",
    "Reason",
    "check_example",
    "example_hash",
    "example_texts",
    "near_duplicate_key",
    "near_text",
    "normalise_prompt",
    "normalise_text",
    "prompt_first_word",
]

Format = Literal["chat", "preference"]


@dataclass(frozen=True)
class Reason:
    """Why a line was quarantined: a stable snake_case code and one human line."""

    code: str
    message: str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


Content = str | list[TextPart] | None


class FunctionCall(_Strict):
    name: str = Field(min_length=1)
    arguments: str


class ToolCall(_Strict):
    id: str = Field(min_length=1)
    type: Literal["function"]
    function: FunctionCall


class FunctionDefinition(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class SystemMessage(_Strict):
    role: Literal["system"]
    content: Content = None
    name: str | None = None


class DeveloperMessage(_Strict):
    role: Literal["developer"]
    content: Content = None
    name: str | None = None


class UserMessage(_Strict):
    role: Literal["user"]
    content: Content = None
    name: str | None = None


class AssistantMessage(_Strict):
    role: Literal["assistant"]
    content: Content = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    weight: Literal[0, 1] | None = None


class ToolMessage(_Strict):
    role: Literal["tool"]
    content: Content = None
    tool_call_id: str


class FunctionMessage(_Strict):
    role: Literal["function"]
    name: str = Field(min_length=1)
    content: Content = None


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Field(discriminator="role"),
]


class ChatExample(_Strict):
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolDefinition] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[FunctionDefinition] | None = None


class PreferenceInput(_Strict):
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolDefinition] | None = None
    parallel_tool_calls: bool | None = None


class PreferenceExample(_Strict):
    input: PreferenceInput
    preferred_output: list[AssistantMessage] = Field(min_length=1, max_length=1)
    non_preferred_output: list[AssistantMessage] = Field(min_length=1, max_length=1)


_ROLE_NAMES = ("system", "developer", "user", "assistant", "tool", "function")
_ROLES = ", ".join(_ROLE_NAMES)
_CONTENT_BRANCHES = {"str", "list[TextPart]", "none"}


def _is_branch(part: str, previous: int | str | None) -> bool:
    """Whether a location part names a union branch or a discriminator tag, not a field."""
    if part in _CONTENT_BRANCHES or part[:1].isupper() or "[" in part:
        return True
    return part in _ROLE_NAMES and isinstance(previous, int)


def _where(loc: tuple[int | str, ...]) -> str:
    """A JSON path for a pydantic error location, without union-branch and discriminator parts."""
    out = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_branch(part, loc[index - 1] if index else None):
            out += f".{part}" if out else part
    return out or "the example"


def _reason_from_error(error: Mapping[str, Any], line_no: int) -> Reason:
    loc: tuple[int | str, ...] = tuple(error["loc"])
    where = _where(loc)
    kind = error["type"]
    prefix = f"line {line_no}: {where}"
    if kind == "extra_forbidden":
        return Reason("unknown_key", f"line {line_no}: unknown key {loc[-1]!r} in {_where(loc[:-1])}")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "?")
        return Reason("bad_role", f"{prefix}.role is {tag!r}, expected one of {_ROLES}")
    if kind == "union_tag_not_found":
        return Reason("missing_role", f"{prefix} has no role")
    if kind == "missing":
        return Reason("missing_field", f"{prefix} is missing")
    if loc and loc[-1] == "weight":
        return Reason("bad_weight", f"{prefix} must be 0 or 1")
    if loc and loc[-1] in _CONTENT_BRANCHES:
        return Reason("bad_content", f"{prefix} must be a string, a list of text parts, or null")
    if where == "messages" and kind == "too_short":
        return Reason("no_messages", f"{prefix} is empty")
    if kind in {"too_short", "too_long"} and where in {"preferred_output", "non_preferred_output"}:
        return Reason("bad_preference_output", f"{prefix} must hold exactly one assistant message")
    if loc and loc[-1] == "role":
        return Reason("bad_role", f"{prefix} must be 'assistant'")
    code = "bad_type" if kind.endswith("_type") else "bad_value"
    return Reason(code, f"{prefix}: {error['msg']}")


def _text_of(content: Content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


def _check_messages(
    messages: list[Any], line_no: int, where: str, *, require_trainable: bool, tools: Iterable[str] | None
) -> list[Reason]:
    reasons: list[Reason] = []
    issued: set[str] = set()
    known_tools = None if tools is None else set(tools)
    assistant_turns = 0
    trainable = 0
    for index, message in enumerate(messages):
        field = f"{where}[{index}]"
        text = _text_of(message.content)
        if isinstance(message, AssistantMessage):
            assistant_turns += 1
            trainable += message.weight != 0
            calls = message.tool_calls or []
            if not text.strip() and not calls and message.function_call is None:
                reasons.append(Reason("empty_content", f"line {line_no}: {field}.content is empty"))
            for call_index, call in enumerate(calls):
                call_field = f"{field}.tool_calls[{call_index}]"
                if call.id in issued:
                    reasons.append(
                        Reason(
                            "duplicate_tool_call_id", f"line {line_no}: {call_field}.id {call.id!r} repeats"
                        )
                    )
                issued.add(call.id)
                if known_tools is not None and call.function.name not in known_tools:
                    reasons.append(
                        Reason(
                            "unknown_tool",
                            f"line {line_no}: {call_field}.function.name {call.function.name!r} "
                            "is not among the example's tools",
                        )
                    )
            for call_field, function in [
                *((f"{field}.tool_calls[{i}]", c.function) for i, c in enumerate(calls)),
                *(((f"{field}.function_call", message.function_call),) if message.function_call else ()),
            ]:
                try:
                    orjson.loads(function.arguments)
                except orjson.JSONDecodeError:
                    reasons.append(
                        Reason(
                            "bad_tool_arguments", f"line {line_no}: {call_field} arguments are not valid JSON"
                        )
                    )
            continue
        if not text.strip():
            reasons.append(Reason("empty_content", f"line {line_no}: {field}.content is empty"))
        if isinstance(message, ToolMessage) and message.tool_call_id not in issued:
            reasons.append(
                Reason(
                    "orphan_tool_message",
                    f"line {line_no}: {field}.tool_call_id {message.tool_call_id!r} "
                    "answers no earlier assistant tool call",
                )
            )
    if require_trainable:
        if not assistant_turns:
            reasons.append(Reason("no_assistant_turn", f"line {line_no}: {where} has no assistant message"))
        elif not trainable:
            reasons.append(
                Reason("no_trainable_turn", f"line {line_no}: {where} has only weight-0 assistant messages")
            )
    return reasons


def _tool_names(
    tools: list[ToolDefinition] | None, functions: list[FunctionDefinition] | None
) -> set[str] | None:
    if tools is None and functions is None:
        return None
    return {tool.function.name for tool in tools or []} | {function.name for function in functions or []}


def check_example(value: dict[str, Any], fmt: Format, line_no: int) -> list[Reason]:
    """Every format problem of one parsed JSON object (empty list: the example is valid)."""
    try:
        if fmt == "chat":
            chat = ChatExample.model_validate(value)
        else:
            preference = PreferenceExample.model_validate(value)
    except ValidationError as exc:
        reasons = [_reason_from_error(error, line_no) for error in exc.errors(include_url=False)]
        return list(dict.fromkeys(reasons))
    if fmt == "chat":
        names = _tool_names(chat.tools, chat.functions)
        return _check_messages(chat.messages, line_no, "messages", require_trainable=True, tools=names)
    names = _tool_names(preference.input.tools, None)
    reasons = _check_messages(
        preference.input.messages, line_no, "input.messages", require_trainable=False, tools=names
    )
    last = preference.input.messages[-1]
    if last.role not in ("user", "tool", "function"):
        reasons.append(
            Reason(
                "bad_preference_input",
                f"line {line_no}: input.messages must end with a user turn, not {last.role}",
            )
        )
    for key in ("preferred_output", "non_preferred_output"):
        reasons += _check_messages(
            getattr(preference, key), line_no, key, require_trainable=False, tools=names
        )
    if preference.preferred_output == preference.non_preferred_output:
        reasons.append(
            Reason("identical_outputs", f"line {line_no}: preferred_output equals non_preferred_output")
        )
    return reasons


# -- canonical form --------------------------------------------------------------------------

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


def example_texts(example: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field path, text) of every string a human or model wrote in the example (secret scanning)."""
    found: list[tuple[str, str]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            found.append((path, value))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))

    walk(dict(example), "")
    return found


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
