"""Why a line was quarantined: the ``Reason`` every check of the stage reports."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Reason"]


@dataclass(frozen=True)
class Reason:
    """Why a line was quarantined: a stable snake_case code and one human line."""

    code: str
    message: str
