"""Progress of long task work in the Prefect UI: a progress bar artifact and a log line now and then."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

if TYPE_CHECKING:
    from uuid import UUID

__all__ = ["TaskProgress"]


class TaskProgress:
    """A progress artifact of the current task run (named by ``key``, so its card has a title),
    moved (and a line logged) at most every ``every_seconds`` and once more at the end, so a long
    step is never silent and never floods."""

    def __init__(
        self,
        what: str,
        *,
        key: str,
        every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._what = what
        self._every = every_seconds
        self._clock = clock
        self._last = clock()
        self._logger = get_run_logger()
        # Called from sync tasks, so Prefect's async_dispatch runs the sync variant: a UUID.
        self._artifact = cast("UUID", create_progress_artifact(0.0, key=key, description=what))

    def update(self, done: float, total: float, message: str) -> None:
        """``done`` of ``total`` so far; ``message`` says it for the log."""
        finished = done >= total
        now = self._clock()
        if not finished and now - self._last < self._every:
            return
        self._last = now
        percent = 100.0 if total <= 0 else min(100.0, 100.0 * done / total)
        update_progress_artifact(self._artifact, percent)
        self._logger.info("%s: %s", self._what, message)
