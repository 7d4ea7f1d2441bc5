"""A column of integers kept as one numpy array per GX chunk (compact, whatever the batch size)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ChunkedColumn"]


class ChunkedColumn:
    """One column of a batch, appended a chunk at a time."""

    def __init__(self, dtype: type[np.signedinteger[Any]]) -> None:
        self.dtype = dtype
        self.parts: list[np.ndarray[Any, Any]] = []

    def append(self, values: list[int]) -> None:
        self.parts.append(np.array(values, dtype=self.dtype))

    def array(self) -> np.ndarray[Any, Any]:
        """The whole column (an empty one is int64, whatever the column's dtype)."""
        return np.concatenate(self.parts) if self.parts else np.array([], dtype=np.int64)
