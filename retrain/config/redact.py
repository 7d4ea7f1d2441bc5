"""Keep credentials out of anything a person or a log can read.

``redact`` replaces the secrets it is given, and anything shaped like a credential: OpenAI
keys (``sk-...``, ``sk-proj-...``), AWS access key ids, ``Bearer`` tokens, and the value of an
``api_key`` / ``api-key`` field in a query string, header or JSON text.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact"]

MASK = "***"
_MIN_SECRET = 6

_CREDENTIAL = re.compile(
    r"sk-[A-Za-z0-9_\-*]{4,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|Bearer\s+[A-Za-z0-9._\-~+/]{8,}=*",
    re.IGNORECASE,
)
_KEY_FIELD = re.compile(
    r"""(?P<name>["']?api[_-]?key["']?\s*[:=]\s*["']?)(?P<value>[^"'&\s,;}]+)""",
    re.IGNORECASE,
)


def redact(text: str, *secrets: str) -> str:
    """Replace the given secrets, and anything shaped like an API key or token, with ``***``.

    Secrets shorter than six characters are not searched for literally (a one-letter
    placeholder key would otherwise mask every such letter); the patterns still apply.
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, MASK)
    text = _CREDENTIAL.sub(MASK, text)
    return _KEY_FIELD.sub(lambda m: m.group("name") + MASK, text)
