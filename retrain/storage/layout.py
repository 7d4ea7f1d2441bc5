"""The bucket layout: every key prefix retrain reads or writes, relative to ``RETRAIN_S3__PREFIX``.

Producers write under ``incoming/``::

    incoming/YYYY-MM-DD/{source}.jsonl[.gz]
    incoming/YYYY-MM-DD/{source}/[TAG=VALUE/...]{name}.jsonl[.gz]

``YYYY-MM-DD`` is the UTC date the data was produced (the *partition*); ``{source}`` names the
producer; ``TAG=VALUE`` folders tag everything below them.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = [
    "BATCH_PREFIX",
    "DATA_SUFFIXES",
    "INCOMING_PREFIX",
    "LEGACY_PROCESSED_KEY",
    "PENDING_KEY",
    "PROCESSED_PREFIX",
    "UNDATED",
    "WATERMARK_KEY",
    "partition_of",
    "source_of",
    "tags_of",
]

INCOMING_PREFIX = "incoming/"
PROCESSED_PREFIX = "state/ingest/processed/"
WATERMARK_KEY = "state/ingest/watermark.json"
PENDING_KEY = "state/ingest/pending.json"
LEGACY_PROCESSED_KEY = "state/ingest/processed.json"
BATCH_PREFIX = "state/ingest/batches/"
UNDATED = "_undated"
DATA_SUFFIXES = (".jsonl", ".jsonl.gz")
_PARTITION = re.compile(r"^incoming/(\d{4}-\d{2}-\d{2})/")


def partition_of(key: str) -> str:
    """The date partition of an incoming key (``YYYY-MM-DD``), or ``_undated``."""
    match = _PARTITION.match(key)
    if match is None:
        return UNDATED
    try:
        date.fromisoformat(match.group(1))
    except ValueError:
        return UNDATED
    return match.group(1)


def source_of(key: str) -> str:
    """The producer of an incoming key: the first path segment after the date partition."""
    rest = key.removeprefix(INCOMING_PREFIX)
    if partition_of(key) != UNDATED:
        rest = rest.split("/", 1)[1]
    first = rest.split("/", 1)[0]
    for suffix in DATA_SUFFIXES:
        first = first.removesuffix(suffix)
    return first or "_unknown"


def tags_of(key: str) -> dict[str, str]:
    """``TAG=VALUE`` folders of an incoming key."""
    folders = key.split("/")[:-1]
    return dict(folder.split("=", 1) for folder in folders if "=" in folder)
