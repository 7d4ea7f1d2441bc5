"""The answers a run's models gave, cached in S3 so that a run asks each question once.

Every answer is cached under ``state/eval-cache/{model}/{params hash}/{item hash}.json`` as
soon as it arrives, so a run that crashed asks again only for what is missing; S3 failing to
write or read one cached answer costs that answer a re-ask, not the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.request_params import params_hash
from retrain.evaluate.targets import ModelTarget
from retrain.exceptions import StorageUnavailable
from retrain.storage.layout import EVAL_CACHE_PREFIX
from retrain.storage.object_store import ObjectStore

__all__ = ["AnswerCache", "cache_prefix"]

logger = logging.getLogger(__name__)

_S3_THREADS = 8  # below botocore's default pool of 10 connections

T = TypeVar("T")


def cache_prefix(model_id: str, settings: EvaluationSettings) -> str:
    """Where the cached answers of one model under the current request parameters live."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-")[:80]
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:8]
    return f"{EVAL_CACHE_PREFIX}{slug}-{digest}/{params_hash(settings, model_id)}/"


class AnswerCache:
    """Reads and writes the cached answers of the targets it was opened for, on its own S3 threads."""

    def __init__(self, store: ObjectStore, settings: EvaluationSettings) -> None:
        self._store = store
        self._settings = settings
        self._cached: dict[str, set[str]] = {}
        self._s3 = ThreadPoolExecutor(max_workers=_S3_THREADS, thread_name_prefix="eval-s3")

    async def _io(self, call: Callable[..., T], *args: Any) -> T:
        """Blocking S3 calls on the cache's own threads (the default executor has cpu + 4)."""
        return await asyncio.get_running_loop().run_in_executor(self._s3, partial(call, *args))

    def _key(self, target: ModelTarget, item_hash: str, sample: int) -> str:
        """Answer 0 (the only one, with one sample per item) keeps its key; further samples add theirs."""
        tail = f".s{sample}" if sample else ""
        return f"{cache_prefix(target.model_id, self._settings)}{item_hash}{tail}.json"

    async def open(self, target: ModelTarget) -> None:
        """List the answers already cached for ``target``: only those are read."""
        prefix = cache_prefix(target.model_id, self._settings)
        infos = await self._io(lambda: list(self._store.list(prefix)))
        self._cached[target.label] = {info.key for info in infos}

    def close(self) -> None:
        self._s3.shutdown(wait=True)

    async def get(self, target: ModelTarget, item_hash: str, sample: int = 0) -> dict[str, Any] | None:
        """``target``'s cached answer to the prompt: None if there is none, or S3 fails to read it."""
        key = self._key(target, item_hash, sample)
        if key not in self._cached[target.label]:
            return None
        try:
            record: dict[str, Any] = await self._io(self._store.get_json, key)
        except StorageUnavailable as exc:
            logger.warning(
                "%s: cached answer to item %s unreadable, asking again: %s",
                target.label,
                item_hash[:12],
                exc,
            )
            return None
        return record

    async def put(self, target: ModelTarget, item_hash: str, record: dict[str, Any], sample: int = 0) -> None:
        """Cache ``target``'s answer to the prompt; S3 failing to write it is logged, not raised."""
        key = self._key(target, item_hash, sample)
        try:
            await self._io(self._store.put_json, key, record)
        except StorageUnavailable as exc:  # the answer stands; only a re-run would ask again
            logger.warning("%s: answer to item %s not cached: %s", target.label, item_hash[:12], exc)
        else:
            self._cached[target.label].add(key)
