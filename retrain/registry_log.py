"""The registry's storage: an append-only event log plus periodic snapshots, in S3.

Layout (keys relative to the store's prefix)::

    registry/log/000000000001.json        one RegistryEvent each, written create-only
    registry/snapshots/000000000100.json  the RegistryState as of that event, create-only

An event is appended by a create-only write of the next sequence number, so two writers
racing for one number cannot both win; the loser sees ``AlreadyExists``. Nothing is ever
overwritten or deleted. Snapshots are a cache of the log: a reader loads the newest one,
then lists the log after it (``StartAfter``) and replays the tail.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from pydantic import ValidationError

from retrain.exceptions import AlreadyExists, RegistryError
from retrain.registry_records import RegistryEvent
from retrain.registry_state import RegistryState
from retrain.storage import ObjectStore

__all__ = ["LOG_PREFIX", "SNAPSHOT_PREFIX", "RegistryLog", "event_key", "snapshot_key"]

logger = logging.getLogger(__name__)

LOG_PREFIX = "registry/log/"
SNAPSHOT_PREFIX = "registry/snapshots/"
_FETCH_WORKERS = 16


def event_key(seq: int) -> str:
    return f"{LOG_PREFIX}{seq:012d}.json"


def snapshot_key(seq: int) -> str:
    return f"{SNAPSHOT_PREFIX}{seq:012d}.json"


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
        for info in self.store.list(LOG_PREFIX, start_after=event_key(seq + 1)):
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
        """The newest readable snapshot, or None when there is none."""
        keys = [info.key for info in self.store.list(SNAPSHOT_PREFIX) if _seq_of(info.key) is not None]
        if not keys:
            return None
        try:
            return RegistryState.model_validate_json(self.store.get_bytes(keys[-1]))
        except ValidationError:
            logger.warning("registry snapshot %s is unreadable; replaying the log from the start", keys[-1])
            return None

    def write_snapshot(self, state: RegistryState) -> bool:
        """Store the state as the snapshot of its sequence number; False if it already existed."""
        try:
            self.store.put_json(snapshot_key(state.seq), state.to_snapshot(), create_only=True)
        except AlreadyExists:
            logger.debug("registry snapshot %d was already written by another writer", state.seq)
            return False
        logger.info("wrote registry snapshot at event %d", state.seq)
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
