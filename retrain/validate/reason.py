"""Why a line was quarantined: the ``Reason`` every check of the stage reports."""

from __future__ import annotations

from dataclasses import dataclass

from retrain.config.redact import redact

__all__ = ["Reason", "reason_example"]

_EXAMPLE_CHARS = 160


@dataclass(frozen=True)
class Reason:
    """Why a line was quarantined: a stable snake_case code and one human line."""

    code: str
    message: str


def reason_example(reason: Reason) -> str:
    """The reason's message as an example of its code, safe to show in a summary: anything shaped
    like a credential masked (a message can quote a key or a role from the line), cut short."""
    text = redact(reason.message)
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 1] + "…"
