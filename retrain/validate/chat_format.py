"""The fine-tuning data formats as strict pydantic models, and the format check of an example.

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

``plain_chat`` is a hand-written fast path for the common shape (``messages``
only, plain string content, no tools): when it decides, ``check_example`` is guaranteed to
return no reasons, so the pydantic models only run for the rows it cannot decide. The models
stay the source of truth: the fast path never produces a reason of its own.

The canonical form of an example (``example_hash``, ``normalise_prompt``, ...) is in
``canonical``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retrain.validate.reason import Reason

__all__ = ["ChatExample", "PreferenceExample", "check_example"]

Format = Literal["chat", "preference"]


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


def _tool_call_problems(
    message: AssistantMessage, where: str, issued: set[str], known_tools: set[str] | None
) -> list[Reason]:
    """Repeated tool call ids, calls of unknown tools and arguments that are not JSON, in the order
    of the calls (``where`` is ``line N: field`` of the message; ``issued`` collects the call ids)."""
    reasons: list[Reason] = []
    calls = message.tool_calls or []
    for index, call in enumerate(calls):
        call_field = f"{where}.tool_calls[{index}]"
        if call.id in issued:
            reasons.append(Reason("duplicate_tool_call_id", f"{call_field}.id {call.id!r} repeats"))
        issued.add(call.id)
        if known_tools is not None and call.function.name not in known_tools:
            reasons.append(
                Reason(
                    "unknown_tool",
                    f"{call_field}.function.name {call.function.name!r} is not among the example's tools",
                )
            )
    for call_field, function in [
        *((f"{where}.tool_calls[{i}]", c.function) for i, c in enumerate(calls)),
        *(((f"{where}.function_call", message.function_call),) if message.function_call else ()),
    ]:
        try:
            orjson.loads(function.arguments)
        except orjson.JSONDecodeError:
            reasons.append(Reason("bad_tool_arguments", f"{call_field} arguments are not valid JSON"))
    return reasons


def _message_problems(
    message: Any, where: str, issued: set[str], known_tools: set[str] | None
) -> list[Reason]:
    """The problems of one message (``where`` is ``line N: field``), in a conversation whose
    earlier assistant messages issued the tool call ids in ``issued``."""
    reasons: list[Reason] = []
    empty = not _text_of(message.content).strip()
    if isinstance(message, AssistantMessage):
        if empty and not message.tool_calls and message.function_call is None:
            reasons.append(Reason("empty_content", f"{where}.content is empty"))
        return reasons + _tool_call_problems(message, where, issued, known_tools)
    if empty:
        reasons.append(Reason("empty_content", f"{where}.content is empty"))
    if isinstance(message, ToolMessage) and message.tool_call_id not in issued:
        reasons.append(
            Reason(
                "orphan_tool_message",
                f"{where}.tool_call_id {message.tool_call_id!r} answers no earlier assistant tool call",
            )
        )
    return reasons


def _check_messages(
    messages: list[Any], line_no: int, where: str, *, require_trainable: bool, tools: Iterable[str] | None
) -> list[Reason]:
    reasons: list[Reason] = []
    issued: set[str] = set()
    known_tools = None if tools is None else set(tools)
    for index, message in enumerate(messages):
        reasons += _message_problems(message, f"line {line_no}: {where}[{index}]", issued, known_tools)
    if require_trainable:
        assistants = [message for message in messages if isinstance(message, AssistantMessage)]
        if not assistants:
            reasons.append(Reason("no_assistant_turn", f"line {line_no}: {where} has no assistant message"))
        elif all(message.weight == 0 for message in assistants):
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
