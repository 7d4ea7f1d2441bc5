"""Serving-side alias resolution with a time-to-live cache.

An app instance asks ``resolve_model("production")`` on every request; it reads S3 at most
once per alias per TTL. If S3 cannot be reached when an entry expires, the last known
answer keeps being served (with a warning, retrying once per TTL) until S3 answers again.

Reads go through ``AliasReader``: the ``LATEST`` hint (a copy of the newest heads snapshot:
each alias's current event, a few KB), then a GET probe of the next event, since the log
stays the source of truth. Two GETs however long the log, where a ``Registry`` loads the
full state with every model and lineage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from retrain.config.settings import Settings, get_settings
from retrain.exceptions import StorageError, StorageUnavailable, UnknownAlias
from retrain.registry.log import RegistryLog
from retrain.registry.records import ModelRecord
from retrain.registry.state import AliasHeads
from retrain.storage.object_store import ObjectStore

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "AliasReader",
    "CachedResolver",
    "resolve_model",
    "resolve_record",
    "resolver_for",
]

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 30.0


class _Resolves(Protocol):
    def resolve(self, alias: str) -> ModelRecord: ...


class AliasReader:
    """Read-only alias resolution from the heads snapshot plus the log after it.

    After replaying ``compact_after`` or more events past the newest heads file, it writes
    one for the current event (create-only, best effort: a reader without write access
    logs once and stops trying), so other cold readers start closer to the end of the log.
    """

    def __init__(self, store: ObjectStore, *, compact_after: int | None = 10) -> None:
        self._log = RegistryLog(store)
        self._heads: AliasHeads | None = None
        self._base_seq = 0
        self._compact_after = compact_after
        self._lock = threading.Lock()

    def heads(self) -> AliasHeads:
        """The current events of every alias (a copy), caught up with the log."""
        with self._lock:
            if self._heads is None:
                self._heads = self._log.latest_heads()
                self._base_seq = self._heads.seq
            for event in self._log.events_after(self._heads.seq):
                self._heads.apply(event)
            if self._compact_after is not None and self._heads.seq - self._base_seq >= self._compact_after:
                self._compact(self._heads)
            return self._heads.model_copy()

    def _compact(self, heads: AliasHeads) -> None:
        try:
            self._log.write_heads(heads)
        except StorageError as exc:
            logger.info("registry heads at event %d not written (%s); not trying again", heads.seq, exc)
            self._compact_after = None
            return
        self._base_seq = heads.seq

    def resolve(self, alias: str) -> ModelRecord:
        heads = self.heads()
        event = heads.aliases.get(alias)
        if event is None:
            known = ", ".join(sorted(heads.aliases)) or "none yet"
            raise UnknownAlias(
                f"no alias {alias!r} in the registry (known aliases: {known}): "
                f"see `retrain alias list`, or create it with `retrain alias set {alias} MODEL`"
            )
        return event.model


class CachedResolver:
    """Resolves aliases through an AliasReader (or a Registry), remembering each answer for ttl_seconds."""

    def __init__(
        self,
        registry: _Resolves,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self._registry = registry
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ModelRecord]] = {}
        self._lock = threading.Lock()

    def resolve(self, alias: str) -> ModelRecord:
        """The model the alias points to; UnknownAlias if it points nowhere."""
        with self._lock:
            now = self._clock()
            cached = self._cache.get(alias)
            if cached is not None and now < cached[0]:
                return cached[1]
            try:
                record = self._registry.resolve(alias)
            except StorageUnavailable as exc:
                if cached is None:
                    raise
                logger.warning("registry unreachable; serving %s from cache: %s", alias, exc)
                self._cache[alias] = (now + self._ttl, cached[1])
                return cached[1]
            self._cache[alias] = (now + self._ttl, record)
            return record

    def invalidate(self, alias: str | None = None) -> None:
        """Forget one alias (or all), so the next resolve reads S3."""
        with self._lock:
            if alias is None:
                self._cache.clear()
            else:
                self._cache.pop(alias, None)


_resolvers: dict[tuple[str | None, str, str], CachedResolver] = {}
_resolvers_lock = threading.Lock()


def resolver_for(settings: Settings | None = None) -> CachedResolver:
    """The process-wide cached resolver of the configured S3 location."""
    s3 = (settings or get_settings()).s3
    location = (s3.endpoint_url, s3.bucket, s3.prefix)
    with _resolvers_lock:
        resolver = _resolvers.get(location)
        if resolver is None:
            resolver = CachedResolver(AliasReader(ObjectStore.from_settings(s3)))
            _resolvers[location] = resolver
    return resolver


def resolve_record(alias: str = "production", settings: Settings | None = None) -> ModelRecord:
    """The model record (id, provider, ...) the alias points to, cached for the TTL."""
    return resolver_for(settings).resolve(alias)


def resolve_model(alias: str = "production", settings: Settings | None = None) -> str:
    """The model id serving should use for the alias (cached per S3 location for the TTL)."""
    return resolve_record(alias, settings).model_id
