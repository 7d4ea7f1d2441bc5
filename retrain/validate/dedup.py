"""Duplicate detection across a batch: exact (``example_hash``) and near (``near_duplicate_key``).

A candidate line is a ``duplicate`` when its hash is among ``known_hashes`` (the curated data) or
came earlier in the batch, a ``near_duplicate`` when its near key is among ``known_near_keys`` or
came earlier: the first occurrence wins, later copies are quarantined. Per line only the first 8
bytes of each key are remembered, so memory stays bounded on large batches.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sized

from retrain.validate.line_checks import CheckedLine
from retrain.validate.reason import Reason

__all__ = ["DuplicateScreen", "is_duplicate"]

_DUPLICATE_CODES = frozenset({"duplicate", "near_duplicate"})


def is_duplicate(reasons: Iterable[Reason]) -> bool:
    """Whether the reasons of a line include ``duplicate`` or ``near_duplicate``."""
    return any(reason.code in _DUPLICATE_CODES for reason in reasons)


class DuplicateScreen:
    """The dedup keys seen so far in a batch, and the curated data's."""

    def __init__(self, known_hashes: Container[str], known_near_keys: Container[str]) -> None:
        self.known_hashes = known_hashes
        self.known_near_keys = known_near_keys
        self.check_known_near = not (isinstance(known_near_keys, Sized) and len(known_near_keys) == 0)
        self.seen: set[int] = set()
        self.seen_near: set[int] = set()

    def screen(self, line: CheckedLine) -> None:
        """Give a candidate line with no reason yet the ``duplicate`` or ``near_duplicate`` reason
        it earns, if any, and remember its keys."""
        line_no = line.line_no
        exact = int(line.hash[:16], 16)
        near = int(line.near_key[:16], 16)
        reason: Reason | None = None
        if line.hash in self.known_hashes:
            reason = Reason("duplicate", f"line {line_no}: this example is already in the curated data")
        elif exact in self.seen:
            reason = Reason("duplicate", f"line {line_no}: an identical example came earlier in the batch")
        elif self.check_known_near and line.near_key in self.known_near_keys:
            reason = Reason(
                "near_duplicate",
                f"line {line_no}: same user and assistant text as an example already in the curated data "
                "(ignoring case, spacing and punctuation)",
            )
        elif near in self.seen_near:
            reason = Reason(
                "near_duplicate",
                f"line {line_no}: same user and assistant text as an earlier example "
                "(ignoring case, spacing and punctuation)",
            )
        if reason is not None:
            line.reasons.append(reason)
        self.seen.add(exact)
        self.seen_near.add(near)
