"""The batch gates: enough accepted examples, not too many quarantined lines, and the suite's
batch-level expectations over the gate columns of the batch.

Gates never raise: each ``GateCheck`` says whether it passed and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrain.validate.columns import ChunkedColumn
from retrain.validate.dedup import is_duplicate
from retrain.validate.expectations import GateCheck, SuiteRunner
from retrain.validate.line_checks import CheckedLine

if TYPE_CHECKING:
    from retrain.config.stage_settings import ValidationSettings

__all__ = ["BATCH_COLUMNS", "GateColumns", "batch_gates"]

# The columns batch-level expectations can read (``GateColumns``).
BATCH_COLUMNS = ("n_tokens", "has_system", "is_duplicate")


class GateColumns:
    """The ``BATCH_COLUMNS`` of every accepted example and every (near) duplicate of the batch."""

    def __init__(self) -> None:
        self.columns = {
            "n_tokens": ChunkedColumn(np.int64),
            "has_system": ChunkedColumn(np.int8),
            "is_duplicate": ChunkedColumn(np.int8),
        }

    def add_chunk(self, lines: Iterable[CheckedLine]) -> None:
        """Add the candidate lines of one GX chunk that are accepted or quarantined as duplicates."""
        kept_tokens: list[int] = []
        kept_system: list[int] = []
        kept_duplicate: list[int] = []
        for line in lines:
            if is_duplicate(line.reasons) or not line.reasons:
                assert line.features is not None
                kept_tokens.append(line.n_tokens)
                kept_system.append(line.features[3])
                kept_duplicate.append(int(bool(line.reasons)))
        self.columns["n_tokens"].append(kept_tokens)
        self.columns["has_system"].append(kept_system)
        self.columns["is_duplicate"].append(kept_duplicate)


def batch_gates(
    settings: ValidationSettings,
    runner: SuiteRunner,
    columns: GateColumns,
    *,
    accepted: int,
    lines_read: int,
    quarantined: int,
    duplicates: int,
    data_docs_dir: Path | None,
    new_examples_gate: bool = True,
) -> tuple[list[GateCheck], Path | None]:
    """Every gate of the batch, and the index.html of the Data Docs built in ``data_docs_dir`` (None
    when none were built).

    ``duplicates`` is how many of the ``quarantined`` lines are (near) duplicates: they do not
    count towards the quarantine rate. Without ``new_examples_gate`` the ``min_new_examples`` gate
    is skipped: the nightly run counts new examples when it plans, against the last decision.
    """
    import pandas as pd

    minimum = settings.min_new_examples
    checks = [
        GateCheck(
            "min_new_examples",
            accepted >= minimum,
            accepted,
            minimum,
            f"{accepted} accepted, at least {minimum} needed",
        )
        if new_examples_gate
        else GateCheck(
            "min_new_examples",
            True,
            accepted,
            minimum,
            f"{accepted} accepted; the plan counts new examples since the last decision instead "
            f"(at least {minimum}, RETRAIN_VALIDATION__MIN_NEW_EXAMPLES)",
            skipped=True,
        )
    ]
    counted = lines_read - duplicates
    bad = quarantined - duplicates
    rate = bad / counted if counted else 0.0
    ceiling = settings.max_quarantine_rate
    checks.append(
        GateCheck(
            "max_quarantine_rate",
            rate <= ceiling,
            round(rate, 6),
            ceiling,
            f"{bad} of {counted} non-duplicate lines quarantined ({rate:.1%}), at most {ceiling:.1%} allowed",
        )
    )
    frame = pd.DataFrame({name: column.array() for name, column in columns.columns.items()})
    batch_checks, index = runner.check_batch_with_docs(frame, data_docs_dir)
    return checks + batch_checks, index
