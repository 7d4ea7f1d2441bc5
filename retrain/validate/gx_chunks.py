"""The suite's row-level expectations, run over the candidate lines of a batch a chunk at a time.

``load_suite`` loads the configured format's suite and says which feature columns its row
expectations read; ``check_chunk`` builds the frame of those columns for one chunk of clean
candidate lines and gives each failing line one reason per expectation it fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from retrain.validate.expectations import SuiteRunner
from retrain.validate.features import feature_row_columns
from retrain.validate.gates import BATCH_COLUMNS
from retrain.validate.line_checks import CheckedLine
from retrain.validate.reason import Reason

if TYPE_CHECKING:
    from retrain.config.stage_settings import ValidationSettings

__all__ = ["check_chunk", "load_suite"]


def load_suite(settings: ValidationSettings) -> tuple[SuiteRunner, list[str]]:
    """The configured format's suite and the row columns it reads (ConfigError if it cannot run)."""
    suite_path = settings.suite_path if settings.format == "chat" else settings.preference_suite_path
    runner = SuiteRunner(suite_path)
    row_columns = runner.columns("row", feature_row_columns())
    runner.columns("batch", BATCH_COLUMNS)  # refuses a batch expectation on any other column
    return runner, row_columns


def check_chunk(runner: SuiteRunner, row_columns: list[str], clean: list[CheckedLine]) -> None:
    """Run the row expectations over ``clean`` (candidate lines without reasons); add a reason to a
    line for every expectation it fails."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in row_columns:
        if name == "n_tokens":
            columns[name] = np.fromiter((line.n_tokens for line in clean), dtype=np.int64, count=len(clean))
        else:
            index = feature_row_columns().index(name)
            values = [line.features[index] for line in clean if line.features is not None]
            columns[name] = values if name == "last_role" else np.array(values, dtype=np.int64)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(clean)))
    for position, reasons in runner.check_rows(frame).items():
        line = clean[position]
        line.reasons.extend(
            Reason(r.code, f"line {line.line_no}: fails {r.code}" + (f" ({r.message})" if r.message else ""))
            for r in reasons
        )
