"""The model-alias registry: which model ``production`` (or any alias) points to, and why.

The state of every alias is derived from an append-only event log in S3 (see
``retrain.registry.log``); every change is an event, nothing is overwritten. Writers race
for the next sequence number with create-only writes and the loser re-reads and retries,
so concurrent writers never lose an event. Serving code calls
``retrain.registry.resolver.resolve_model`` rather than this class, to get a cached answer.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from types import EllipsisType

from retrain.exceptions import (
    AlreadyExists,
    RegistryConflict,
    RegistryError,
    StorageError,
    UnknownAlias,
    UnknownModel,
)
from retrain.registry.log import RegistryLog
from retrain.registry.records import ALIAS_PATTERN, Action, ModelRecord, RegistryEvent
from retrain.registry.state import RegistryState
from retrain.storage.object_store import ObjectStore

__all__ = ["ModelRecord", "Registry", "RegistryEvent"]

logger = logging.getLogger(__name__)

_ACTIONS: tuple[Action, ...] = ("set", "promote", "rollback")


class Registry:
    """Aliases over an ObjectStore; safe to share between threads and between processes."""

    def __init__(self, store: ObjectStore, *, snapshot_every: int = 100, max_attempts: int = 50) -> None:
        if snapshot_every < 1 or max_attempts < 1:
            raise ValueError("snapshot_every and max_attempts must be at least 1")
        self._log = RegistryLog(store)
        self._snapshot_every = snapshot_every
        self._max_attempts = max_attempts
        self._state: RegistryState | None = None
        self._events: dict[int, RegistryEvent] = {}
        self._lock = threading.RLock()

    # -- reading --------------------------------------------------------------

    def state(self) -> RegistryState:
        """A copy of the current derived state (newest snapshot, then the log after it)."""
        with self._lock:
            return self._sync().model_copy(deep=True)

    def aliases(self) -> dict[str, ModelRecord]:
        with self._lock:
            return {alias: event.model for alias, event in sorted(self._sync().aliases.items())}

    def get(self, alias: str) -> ModelRecord | None:
        with self._lock:
            event = self._sync().aliases.get(alias)
        return event.model if event else None

    def model(self, model_id: str) -> ModelRecord | None:
        """The latest record of a model any alias ever pointed to, or None."""
        with self._lock:
            return self._sync().models.get(model_id)

    def current(self, alias: str) -> RegistryEvent:
        """The event that set the alias to its current model; UnknownAlias if there is none."""
        with self._lock:
            state = self._sync()
            event = state.aliases.get(alias)
            if event is None:
                raise self._unknown_alias(alias, state)
            return event

    def resolve(self, alias: str) -> ModelRecord:
        return self.current(alias).model

    def history(self, alias: str) -> list[RegistryEvent]:
        """Every event of the alias, oldest first (reads the whole log once, then caches it)."""
        with self._lock:
            state = self._sync()
            if alias not in state.aliases:
                raise self._unknown_alias(alias, state)
            missing = [seq for seq in range(1, state.seq + 1) if seq not in self._events]
            for event in self._log.read_events(missing):
                self._events[event.seq] = event
            return [self._events[seq] for seq in range(1, state.seq + 1) if self._events[seq].alias == alias]

    # -- writing --------------------------------------------------------------

    def set(
        self,
        alias: str,
        model: ModelRecord,
        *,
        actor: str,
        reason: str,
        action: str = "set",
        run_id: str | None = None,
        idempotency_key: str | None = None,
        expected_current: str | None | EllipsisType = ...,
    ) -> RegistryEvent:
        """Point the alias at the model and return the event that did it.

        Writes nothing and returns the earlier event when idempotency_key was already used,
        or when the alias already points to the model. With expected_current (a model id,
        or None for "the alias does not exist yet"), raise RegistryConflict if the alias
        points elsewhere by the time the event would be written.
        """
        self._check_alias(alias)
        checked_action = self._check_action(action)
        with self._lock:
            for attempt in range(self._max_attempts):
                state = self._sync()
                earlier = self._already_made(state, alias, model, idempotency_key, expected_current)
                if earlier is not None:
                    return earlier
                current = state.aliases.get(alias)
                event = RegistryEvent(
                    seq=state.seq + 1,
                    alias=alias,
                    action=checked_action,
                    model=model,
                    previous_model_id=current.model.model_id if current else None,
                    actor=actor,
                    reason=reason,
                    run_id=run_id,
                    idempotency_key=idempotency_key,
                )
                try:
                    self._log.append(event)
                except AlreadyExists:
                    logger.info("registry: another writer took event %d; re-reading", event.seq)
                    time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 10)))
                    continue
                self._record(state, event)
                logger.debug(
                    "registry: %s %s -> %s (event %d, %s)",
                    alias,
                    event.previous_model_id,
                    model.model_id,
                    event.seq,
                    checked_action,
                )
                return event
        raise RegistryConflict(
            f"could not write to the registry log after {self._max_attempts} attempts: "
            "too many concurrent writers; retry"
        )

    def _steps_out_of_range(self, alias: str, steps: int, candidates: list[str], current: str) -> str:
        """Why ``--steps`` cannot go that far back, and which models ``--to`` can still reach.

        A rollback drops the model it rolled away from (rolling back twice goes further back), so
        the alias's history can name models that ``--steps`` no longer reaches."""
        elsewhere = [
            model_id
            for model_id in dict.fromkeys(event.model.model_id for event in reversed(self.history(alias)))
            if model_id != current and model_id not in candidates
        ]
        others = ", ".join(elsewhere)
        if candidates:
            also = f" (or one of the others in its history: {others})" if elsewhere else ""
            return (
                f"alias {alias!r} has {len(candidates)} earlier model(s) to roll back to by steps "
                f"({', '.join(candidates)}), so --steps {steps} is out of range: use 1..{len(candidates)} "
                f"or --to MODEL{also}"
            )
        if elsewhere:
            return (
                f"alias {alias!r} has no earlier model to roll back to by steps (a rollback never undoes "
                f"itself): use --to MODEL with one of the others in its history: {others}"
            )
        return f"alias {alias!r} has pointed to no other model, so there is nothing to roll back to"

    def rollback(
        self,
        alias: str,
        *,
        to: str | None = None,
        steps: int = 1,
        actor: str,
        reason: str = "rollback",
        run_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> RegistryEvent:
        """Re-point the alias to model `to`, or to the model `steps` distinct models back."""
        with self._lock:
            state = self._sync()
            if idempotency_key and idempotency_key in state.idempotency:
                return self._event(state.idempotency[idempotency_key])
            current = state.aliases.get(alias)
            if current is None:
                raise self._unknown_alias(alias, state)
            candidates = state.rollback_candidates(alias)
            if to is not None:
                target = state.models.get(to)
                if target is None:
                    raise UnknownModel(
                        f"model {to!r} is not in the registry: {alias!r} can roll back to "
                        f"{', '.join(candidates) or 'no earlier model'} (see `retrain alias history {alias}`)"
                    )
            elif steps < 1 or steps > len(candidates):
                raise UnknownModel(self._steps_out_of_range(alias, steps, candidates, current.model.model_id))
            else:
                target = state.models[candidates[steps - 1]]
            return self.set(
                alias,
                target,
                actor=actor,
                reason=reason,
                action="rollback",
                run_id=run_id,
                idempotency_key=idempotency_key,
                expected_current=current.model.model_id,
            )

    # -- internals ------------------------------------------------------------

    def _sync(self) -> RegistryState:
        if self._state is None:
            self._state = self._log.latest_snapshot() or RegistryState()
        for event in self._log.events_after(self._state.seq):
            self._state.apply(event)
            self._events[event.seq] = event
        return self._state

    def _record(self, state: RegistryState, event: RegistryEvent) -> None:
        state.apply(event)
        self._events[event.seq] = event
        if event.seq % self._snapshot_every == 0:
            try:
                self._log.write_snapshot(state)
            except StorageError as exc:
                logger.warning("registry: snapshot %d not written: %s", event.seq, exc)

    def _already_made(
        self,
        state: RegistryState,
        alias: str,
        model: ModelRecord,
        idempotency_key: str | None,
        expected_current: str | None | EllipsisType,
    ) -> RegistryEvent | None:
        """The earlier event when ``set`` has nothing to write, else None.

        Nothing to write: the idempotency key was already used, or the alias already points to
        the model. Raises RegistryConflict when expected_current is given and the alias points
        elsewhere.
        """
        if idempotency_key and idempotency_key in state.idempotency:
            logger.info("registry: %s was already applied; nothing to do", idempotency_key)
            return self._event(state.idempotency[idempotency_key])
        current = state.aliases.get(alias)
        current_id = current.model.model_id if current else None
        if not isinstance(expected_current, EllipsisType) and current_id != expected_current:
            raise RegistryConflict(
                f"alias {alias!r} points to {current_id or 'nothing'}, not "
                f"{expected_current or 'nothing'}: another writer moved it; check "
                f"`retrain alias history {alias}` and retry"
            )
        if current is not None and current_id == model.model_id:
            logger.info("registry: %s already points to %s; nothing to do", alias, current_id)
            return current
        return None

    def _event(self, seq: int) -> RegistryEvent:
        if seq not in self._events:
            self._events[seq] = self._log.read_event(seq)
        return self._events[seq]

    @staticmethod
    def _check_alias(alias: str) -> None:
        if not re.fullmatch(ALIAS_PATTERN, alias):
            raise RegistryError(
                f"invalid alias name {alias!r}: use letters, digits, '.', '_' or '-' (at most 64 characters)"
            )

    @staticmethod
    def _check_action(action: str) -> Action:
        for known in _ACTIONS:
            if action == known:
                return known
        raise RegistryError(f"unknown registry action {action!r}: use one of {', '.join(_ACTIONS)}")

    @staticmethod
    def _unknown_alias(alias: str, state: RegistryState) -> UnknownAlias:
        known = ", ".join(sorted(state.aliases)) or "none yet"
        return UnknownAlias(
            f"no alias {alias!r} in the registry (known aliases: {known}): "
            f"see `retrain alias list`, or create it with `retrain alias set {alias} MODEL`"
        )
