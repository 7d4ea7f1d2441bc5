"""The registry's storage: an append-only event log plus periodic snapshots, in S3.

Layout (keys relative to the store's prefix)::

    registry/log/000000000001.json        one RegistryEvent each, written create-only
    registry/snapshots/000000000100.json  the RegistryState as of that event, create-only
    registry/heads/000000000100.json      the aliases' current events only (read path), create-only
    registry/LATEST.json                  a copy of the newest heads file and the newest full
                                          snapshot's seq: a hint (overwritten)

An event is appended by a create-only write of the next sequence number, so two writers
racing for one number cannot both win; the loser sees ``AlreadyExists``. Nothing in
``log/``, ``snapshots/`` or ``heads/`` is ever overwritten or deleted. Snapshots are a
cache of the log: a reader loads the newest one, then reads the log after it and replays
the tail. ``LATEST.json`` saves listing the snapshots; it is only a hint: a stale or
missing pointer costs a longer tail (or one listing), never a wrong answer, because the
log after the snapshot is always read. Serving reads only the small heads snapshot (a few
KB, whatever the number of models), not the full state with every model and lineage.
Heads files also appear between full snapshots: a reader that replayed a long tail writes
one (``write_heads``), so cold reads stay two GETs whatever the writers' snapshot interval.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from pydantic import ValidationError

from retrain.exceptions import AlreadyExists, ObjectNotFound, RegistryError
from retrain.registry.records import RegistryEvent
from retrain.registry.state import AliasHeads, RegistryState
from retrain.storage.layout import (
    REGISTRY_LATEST_KEY,
    REGISTRY_LOG_PREFIX,
    SNAPSHOT_PREFIX,
    event_key,
    heads_key,
    snapshot_key,
)
from retrain.storage.object_store import ObjectStore

__all__ = ["RegistryLog"]

logger = logging.getLogger(__name__)

_FETCH_WORKERS = 16


def _seq_of(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1].removesuffix(".json")
    return int(name) if name.isdigit() else None


class RegistryLog:
    """Reads and appends registry events and snapshots through an ObjectStore."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    # -- events ---------------------------------------------------------------

    def append(self, event: RegistryEvent) -> None:
        """Write the event at its sequence number; AlreadyExists if another writer got there first."""
        self.store.put_json(event_key(event.seq), event.model_dump(mode="json"), create_only=True)

    def read_event(self, seq: int) -> RegistryEvent:
        return self._parse_event(seq, self.store.get_json(event_key(seq)))

    def read_events(self, sequence_numbers: list[int]) -> list[RegistryEvent]:
        """The events with these sequence numbers, in the given order (fetched in parallel)."""
        if len(sequence_numbers) <= 1:
            return [self.read_event(seq) for seq in sequence_numbers]
        with ThreadPoolExecutor(max_workers=min(_FETCH_WORKERS, len(sequence_numbers))) as pool:
            return list(pool.map(self.read_event, sequence_numbers))

    def events_after(self, seq: int) -> list[RegistryEvent]:
        """Every event with a sequence number above seq, in order, up to the first gap.

        Probes the next key first: when nothing was written since (the common case) that
        is one GET, cheaper than a LIST; otherwise the log is listed from seq on.
        """
        following = self.store.get_json_or_none(event_key(seq + 1))
        if following is None:
            return []
        sequence_numbers: list[int] = []
        for info in self.store.list(REGISTRY_LOG_PREFIX, start_after=event_key(seq + 1)):
            number = _seq_of(info.key)
            if number is None:
                continue
            if number != seq + len(sequence_numbers) + 2:
                logger.warning("registry log has a gap before event %d; reading up to the gap", number)
                break
            sequence_numbers.append(number)
        return [self._parse_event(seq + 1, following), *self.read_events(sequence_numbers)]

    # -- snapshots ------------------------------------------------------------

    def latest_snapshot(self) -> RegistryState | None:
        """The newest readable snapshot (through the LATEST hint, else a listing), or None."""
        hint = self._hint()
        hinted = (
            self._seq_of_hint(hint, "snapshot") if hint and "snapshot" in hint else self._seq_of_hint(hint)
        )
        if hinted is not None:
            data = self._get_or_none(snapshot_key(hinted))
            if data is not None:
                return self._parse_snapshot(snapshot_key(hinted), data)
        keys = [info.key for info in self.store.list(SNAPSHOT_PREFIX) if _seq_of(info.key) is not None]
        if not keys:
            return None
        return self._parse_snapshot(keys[-1], self.store.get_bytes(keys[-1]))

    def latest_heads(self) -> AliasHeads:
        """The aliases' current events as of the newest snapshot (empty when there is none).

        One small GET in the common case: the LATEST hint carries the heads themselves.
        Falls back to ``heads/{seq}``, then to the full snapshot (registries written before
        heads existed).
        """
        hint = self._hint()
        if hint is not None and "aliases" in hint:
            try:
                return AliasHeads.model_validate(hint)
            except ValidationError:
                logger.warning("registry %s is unreadable; reading the heads file", REGISTRY_LATEST_KEY)
        hinted = self._seq_of_hint(hint)
        if hinted:
            data = self._get_or_none(heads_key(hinted))
            if data is not None:
                try:
                    return AliasHeads.model_validate_json(data)
                except ValidationError:
                    logger.warning(
                        "registry heads %s is unreadable; using the full snapshot", heads_key(hinted)
                    )
        state = self.latest_snapshot()
        return state.heads() if state is not None else AliasHeads()

    def write_snapshot(self, state: RegistryState) -> bool:
        """Store the state as the snapshot of its sequence number; False if it already existed.

        Writes the full snapshot, then the heads snapshot (both create-only), then moves the
        LATEST hint forward (never back, as far as a read-then-write can tell).
        """
        try:
            self.store.put_json(snapshot_key(state.seq), state.to_snapshot(), create_only=True)
        except AlreadyExists:
            logger.debug("registry snapshot %d was already written by another writer", state.seq)
            return False
        heads = state.heads().to_snapshot()
        try:
            self.store.put_json(heads_key(state.seq), heads, create_only=True)
        except AlreadyExists:
            logger.debug("registry heads %d was already written by another writer", state.seq)
        hinted = self._hinted_seq()
        if hinted is None or hinted < state.seq:
            self.store.put_json(REGISTRY_LATEST_KEY, {**heads, "snapshot": state.seq})
        logger.info("wrote registry snapshot at event %d", state.seq)
        return True

    def write_heads(self, heads: AliasHeads) -> bool:
        """Store a heads snapshot between full snapshots (create-only) and move the hint to it.

        Readers call this after replaying a long tail, so the next cold read is short. The
        hint keeps naming the newest full snapshot for writers. False if nothing was written.
        """
        data = heads.to_snapshot()
        try:
            self.store.put_json(heads_key(heads.seq), data, create_only=True)
        except AlreadyExists:
            return False
        hint = self._hint()
        hinted = self._seq_of_hint(hint)
        if hinted is None or hinted < heads.seq:
            snapshot = self._seq_of_hint(hint, "snapshot") if hint and "snapshot" in hint else hinted
            self.store.put_json(REGISTRY_LATEST_KEY, {**data, "snapshot": snapshot} if snapshot else data)
        logger.info("wrote registry heads at event %d", heads.seq)
        return True

    # -- state ----------------------------------------------------------------

    def catch_up(self, state: RegistryState) -> RegistryState:
        """Apply every event written after the state's sequence number (in place) and return it."""
        for event in self.events_after(state.seq):
            state.apply(event)
        return state

    def replay(self, *, from_snapshot: bool = True) -> RegistryState:
        """The current state: from the newest snapshot plus the log after it, or from the whole log."""
        start = self.latest_snapshot() if from_snapshot else None
        return self.catch_up(start or RegistryState())

    # -- internals ------------------------------------------------------------

    def _get_or_none(self, key: str) -> bytes | None:
        try:
            return self.store.get_bytes(key)
        except ObjectNotFound:
            return None

    def _hint(self) -> dict[str, Any] | None:
        """The LATEST hint as a JSON object, or None when it is missing or unreadable."""
        data = self._get_or_none(REGISTRY_LATEST_KEY)
        if data is None:
            return None
        try:
            hint = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return hint if isinstance(hint, dict) else None

    @staticmethod
    def _seq_of_hint(hint: dict[str, Any] | None, field: str = "seq") -> int | None:
        seq = hint.get(field) if hint is not None else None
        return seq if isinstance(seq, int) and seq >= 0 else None

    def _hinted_seq(self) -> int | None:
        """The LATEST hint's sequence number, or None without a usable hint."""
        return self._seq_of_hint(self._hint())

    @staticmethod
    def _parse_snapshot(key: str, data: bytes) -> RegistryState | None:
        try:
            return RegistryState.model_validate_json(data)
        except ValidationError:
            logger.warning("registry snapshot %s is unreadable; replaying the log from the start", key)
            return None

    @staticmethod
    def _parse_event(seq: int, data: object) -> RegistryEvent:
        try:
            event = RegistryEvent.model_validate(data)
        except ValidationError as exc:
            raise RegistryError(
                f"registry event {event_key(seq)} is not a valid event ({exc.error_count()} problems): "
                "the log must only be written by retrain"
            ) from exc
        if event.seq != seq:
            raise RegistryError(f"registry event {event_key(seq)} claims seq {event.seq}: the log is corrupt")
        return event
