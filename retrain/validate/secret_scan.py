"""The secret scan of a line: API keys, AWS access keys, private key blocks, bearer tokens, GitHub
and Slack tokens in any string of the example.

``may_hold_secret`` is a cheap, sound prefilter over the raw line, so the patterns only run over
the texts of the few lines that may hold one. The reason names the field and the kind of
secret, never the secret itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from retrain.validate.reason import Reason

__all__ = ["SECRETS", "example_texts", "may_hold_secret", "secret_reason"]

_SECRET_PATTERNS: dict[str, str] = {
    "an OpenAI API key": r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    "an AWS access key id": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "a private key block": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----",
    "a bearer token": r"(?i:\bbearer\s+)[A-Za-z0-9\-._~+/]{20,}=*",
    "a GitHub token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    "a Slack token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
}
SECRETS = {kind: re.compile(pattern) for kind, pattern in _SECRET_PATTERNS.items()}
_UNDERSCORE_HINTS = re.compile(rb"gh[pousr]_|github_pat_")
_AWS_HINT = re.compile(rb"A[KS]IA")


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


def may_hold_secret(data: bytes) -> bool:
    """A cheap, sound prefilter over the raw line: False only if no secret pattern can match.

    Each pattern needs a literal that shows in the raw JSON unless a ``\\u`` escape hides it.
    """
    if b"\\" in data and b"\\u" in data:
        return True
    if b"_" in data and _UNDERSCORE_HINTS.search(data):
        return True
    if b"-" in data and (b"sk-" in data or b"xox" in data or b"PRIVATE KEY" in data):
        return True
    if _AWS_HINT.search(data):
        return True
    return b"bearer" in data.lower()


def secret_reason(example: dict[str, Any], data: bytes, line_no: int) -> Reason | None:
    """``contains_secret`` for the first string of ``example`` (parsed from ``data``) that holds a secret."""
    if not may_hold_secret(data):
        return None
    for path, text in example_texts(example):
        for kind, pattern in SECRETS.items():
            if pattern.search(text):
                return Reason("contains_secret", f"line {line_no}: {path} contains what looks like {kind}")
    return None
