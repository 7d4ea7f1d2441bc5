"""Keep credentials out of anything a person or a log can read."""

from __future__ import annotations

import re

__all__ = ["redact"]

_CREDENTIAL = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{4,}|AKIA[0-9A-Z]{16}|Bearer\s+[A-Za-z0-9._\-]{8,}|api[_-]?key=[^&\s]+)",
    re.IGNORECASE,
)


def redact(text: str, *secrets: str) -> str:
    """Replace the given secrets, and anything shaped like an API key or token, with ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _CREDENTIAL.sub("***", text)
