"""Domain logs in the Prefect UI.

The domain modules (``retrain.*``) log through ``logging`` and know nothing of Prefect. Inside a
flow or task run their records also go to that run's log, so what they report (a lease taken
over, a failed job replaced, an eval item that failed) shows in the UI beside the tasks' own lines.
Outside a run (the CLI, the lease-renewal thread) they reach only the console.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

__all__ = ["send_domain_logs_to_runs"]


class _RunLogHandler(APILogHandler):
    """Prefect's API log handler, silent (instead of warning) outside a flow or task run."""

    def emit(self, record: logging.LogRecord) -> None:
        if TaskRunContext.get() is None and FlowRunContext.get() is None:
            return
        super().emit(record)


def send_domain_logs_to_runs() -> None:
    """Send INFO and above of the ``retrain`` loggers to the current run's log (once per process)."""
    logger = logging.getLogger("retrain")
    if not any(isinstance(handler, _RunLogHandler) for handler in logger.handlers):
        logger.addHandler(_RunLogHandler())
    if logger.level == logging.NOTSET:  # the root logger (WARNING under Prefect) would drop INFO
        logger.setLevel(logging.INFO)
