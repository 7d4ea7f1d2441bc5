"""The validate stage: checks a night's batch of JSONL training examples line by line (JSON, data
format, token limits, secrets, eval leaks, duplicates, the Great Expectations suite), accepts or
quarantines every line with its reasons, and decides the batch gates. The entry point is
``retrain.validate.batch.validate_batch``; it, ``check_line``, ``gx_chunks.load_suite`` and
``gates.BATCH_COLUMNS`` are imported from their modules, not from here, because validation worker
processes import this package before ``line_checks``: everything re-exported here is light (no
numpy, pandas, pydantic-settings or Great Expectations), so a spawned worker imports no more than
it uses.
"""

from retrain.validate.batch_result import AcceptedExample, BatchResult, QuarantinedLine, SourceCounts
from retrain.validate.canonical import example_hash, near_duplicate_key, normalise_prompt, normalise_text
from retrain.validate.chat_format import ChatExample, PreferenceExample, check_example
from retrain.validate.expectations import GateCheck
from retrain.validate.features import feature_row_columns
from retrain.validate.jsonl_reader import read_jsonl
from retrain.validate.reason import Reason
from retrain.validate.tokens import (
    CostEstimate,
    base_model_id,
    count_example,
    encoding_for_model,
    estimate_cost,
    lookup_by_family,
)

__all__ = [
    "AcceptedExample",
    "BatchResult",
    "ChatExample",
    "CostEstimate",
    "GateCheck",
    "PreferenceExample",
    "QuarantinedLine",
    "Reason",
    "SourceCounts",
    "base_model_id",
    "check_example",
    "count_example",
    "encoding_for_model",
    "estimate_cost",
    "example_hash",
    "feature_row_columns",
    "lookup_by_family",
    "near_duplicate_key",
    "normalise_prompt",
    "normalise_text",
    "read_jsonl",
]
