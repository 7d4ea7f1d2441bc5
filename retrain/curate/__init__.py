"""Curate: the accepted examples of each ingest batch become an immutable shard (with a keys file
of its examples' dedup keys), each shard a new dataset version that names exactly what a model is
trained on, and a version's training-set policy picks the examples of its training files.
"""

from retrain.curate.curated_keys import CuratedKeys, curated_keys
from retrain.curate.dataset import (
    DatasetVersion,
    latest_version,
    list_versions,
    load_version,
    publish_version,
)
from retrain.curate.shards import (
    KEYS_ENTRY_BYTES,
    Shard,
    is_validation,
    iter_shard_rows,
    packed_keys,
    unpacked_keys,
    write_shard,
)
from retrain.curate.training_files import (
    MIN_FILE_EXAMPLES,
    TrainingFiles,
    build_training_files,
    training_set_policy,
)

__all__ = [
    "CuratedKeys",
    "DatasetVersion",
    "KEYS_ENTRY_BYTES",
    "MIN_FILE_EXAMPLES",
    "Shard",
    "TrainingFiles",
    "build_training_files",
    "curated_keys",
    "is_validation",
    "iter_shard_rows",
    "latest_version",
    "list_versions",
    "load_version",
    "packed_keys",
    "publish_version",
    "training_set_policy",
    "unpacked_keys",
    "write_shard",
]
