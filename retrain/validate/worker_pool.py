"""Where the line checks of a batch run: in-process, or in worker processes, in order either way.

The line checks (``line_checks``) are pure, so once a batch reaches ``parallel_min_lines`` lines
its blocks go to worker processes: forked when this process runs no other thread, spawned
otherwise (so a threaded caller, such as a flow run, passes on no lock held by another thread).
Results come back strictly in submission order, so the outcome does not depend on the number of
workers.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import types
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import get_all_start_methods, get_context
from typing import TYPE_CHECKING

from retrain.exceptions import ConfigError
from retrain.validate.jsonl_reader import LineBlock, RawLine
from retrain.validate.line_checks import (
    CheckedBlock,
    LineChecker,
    check_block_in_worker,
    init_worker,
    rejected_line,
    worker_ready,
)

if TYPE_CHECKING:
    from retrain.config.stage_settings import ValidationSettings

__all__ = ["OrderedChecks", "worker_count"]

# The worker messages belong to the batch's log: they keep the logger name it is filtered by.
logger = logging.getLogger("retrain.validate.batch")

_MAX_WORKERS = 8


def _import_great_expectations() -> None:
    try:
        importlib.import_module("great_expectations")
    except Exception:  # the first GX chunk imports it again and reports the error there
        logger.debug("background import of great_expectations failed", exc_info=True)


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Spawn workers without re-running the caller's ``__main__`` in them.

    A spawned child normally re-imports the parent's main script, which re-runs any script
    that calls ``validate_batch`` without an ``if __name__ == "__main__"`` guard. The workers
    only need ``retrain.validate.line_checks``, so the main module is hidden while they start.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _start_method() -> str:
    """``fork`` when this process runs no other thread, else ``spawn``.

    A forked worker starts in milliseconds with the vocabulary already loaded; a spawned one
    imports and loads it again (about half a second). Forking is only safe while no other
    thread can hold a lock the child would inherit (logging, OpenSSL in a boto3 thread), so a
    threaded caller, such as a Prefect flow run, gets spawned workers.
    """
    if threading.active_count() == 1 and "fork" in get_all_start_methods():
        return "fork"
    return "spawn"


def worker_count(settings: ValidationSettings) -> int:
    """``settings.workers``, or when that is 0 the CPUs this process may use (at most 8)."""
    if settings.workers:
        return settings.workers
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, _MAX_WORKERS))


# A queued block: its source, its raw data and its checks (a worker's future, or done in-process).
_Pending = tuple[str, bytes, "Future[CheckedBlock] | CheckedBlock"]


class OrderedChecks:
    """Runs line checks in-process or in worker processes; yields results in submission order.

    Blocks are checked in-process until the batch reaches ``start_after`` lines; then the
    workers are started, and in-process checking continues until the first worker is ready
    (with ``start_after`` 0 every block goes to the workers).
    """

    def __init__(self, checker: LineChecker, workers: int, start_after: int) -> None:
        self.checker = checker
        self.workers = workers
        self.start_after = start_after
        self.lines = 0
        self.pool: ProcessPoolExecutor | None = None
        self.warm: list[Future[bool]] = []
        self.queue: deque[_Pending] = deque()
        self.in_flight = 0
        self.worker_lines = 0

    def __enter__(self) -> OrderedChecks:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            logger.info(
                "%d of %d lines were checked in %d worker processes",
                self.worker_lines,
                self.lines,
                self.workers,
            )

    def _start_pool(self) -> None:
        method = _start_method()
        logger.info("checking lines in %d worker processes (%s)", self.workers, method)
        self.pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=get_context(method),
            initializer=init_worker,
            initargs=(self.checker.config,),
        )
        with _main_module_hidden():  # spawned: one process per submit; forked: all at the first
            self.warm = [self.pool.submit(worker_ready) for _ in range(self.workers)]
        if "great_expectations" not in sys.modules:
            # The parent mostly waits from here on: import GX (seconds) while the workers check lines.
            threading.Thread(target=_import_great_expectations, name="import-gx", daemon=True).start()

    def _pool_ready(self) -> bool:
        """Whether to hand blocks to the pool: at once with ``start_after`` 0, else once a worker is up."""
        if self.pool is None:
            return False
        return self.start_after == 0 or any(future.done() for future in self.warm)

    def submit(self, source: str, item: LineBlock | RawLine) -> Iterator[tuple[str, bytes, CheckedBlock]]:
        """Queue one block (or one line the reader already rejected); yields every finished
        block that is next in order."""
        if isinstance(item, RawLine):
            rejected = rejected_line(item, self.checker.config.max_line_bytes)
            self.queue.append((source, item.data, CheckedBlock([rejected], 0)))
        else:
            self.lines += item.n_lines
            if self.pool is None and self.workers > 1 and self.lines >= self.start_after:
                self._start_pool()
            if self.pool is not None and self._pool_ready():
                self.queue.append((source, item.data, self.pool.submit(check_block_in_worker, item)))
                self.in_flight += 1
                self.worker_lines += item.n_lines
            else:
                self.queue.append((source, item.data, self.checker.check_block(item)))
        yield from self._pop(wait=self.in_flight > 2 * self.workers + 2)

    def drain(self) -> Iterator[tuple[str, bytes, CheckedBlock]]:
        yield from self._pop(wait=True, everything=True)

    def _pop(self, *, wait: bool, everything: bool = False) -> Iterator[tuple[str, bytes, CheckedBlock]]:
        while self.queue:
            source, data, item = self.queue[0]
            if isinstance(item, Future):
                if not (item.done() or wait):
                    return
                try:
                    checked = item.result()
                except BrokenProcessPool as exc:
                    raise ConfigError(
                        f"a validation worker process died ({exc}): set RETRAIN_VALIDATION__WORKERS=1 "
                        "to check lines in-process"
                    ) from exc
                self.in_flight -= 1
                wait = everything or self.in_flight > 2 * self.workers + 2
            else:
                checked = item
            self.queue.popleft()
            yield source, data, checked
