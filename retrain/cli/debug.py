"""Whether ``--debug`` was given: errors then show their traceback instead of one line."""

from __future__ import annotations

__all__ = ["debugging", "set_debugging"]

_state = {"debug": False}


def debugging() -> bool:
    """Whether `--debug` was given: show tracebacks."""
    return _state["debug"]


def set_debugging(on: bool) -> None:
    _state["debug"] = on
