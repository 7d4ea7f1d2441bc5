"""The two aliases the nightly pipeline moves: ``candidate`` (what was trained tonight) and ``production``."""

from __future__ import annotations

__all__ = ["CANDIDATE", "PRODUCTION"]

CANDIDATE = "candidate"
PRODUCTION = "production"
