"""Ingest: one nightly run at a time (a lease in S3) finds the objects under ``incoming/`` not
ingested yet, without listing them all, and ingests each night's new objects exactly once as a
batch: validated, quarantined or curated, recorded in a batch manifest and summarised.
"""

from retrain.ingest.batches import (
    IngestReport,
    ObjectManifest,
    batch_id_for,
    ingest_objects,
    list_batches,
    load_batch,
    quarantined_rows,
)
from retrain.ingest.discovery import (
    Discovery,
    discover,
    find_new_objects,
    processed_etags,
    read_watermark,
    record_processed,
)
from retrain.ingest.lease import (
    NIGHTLY,
    HeldLease,
    Holder,
    Lease,
    LeaseLost,
    StoppedCheck,
    acquire,
    break_lease,
    current,
    held,
    release,
    renew,
)
from retrain.ingest.summary import validation_markdown

__all__ = [
    "Discovery",
    "HeldLease",
    "Holder",
    "IngestReport",
    "Lease",
    "LeaseLost",
    "NIGHTLY",
    "ObjectManifest",
    "StoppedCheck",
    "acquire",
    "batch_id_for",
    "break_lease",
    "current",
    "discover",
    "find_new_objects",
    "held",
    "ingest_objects",
    "list_batches",
    "load_batch",
    "processed_etags",
    "quarantined_rows",
    "read_watermark",
    "record_processed",
    "release",
    "renew",
    "validation_markdown",
]
