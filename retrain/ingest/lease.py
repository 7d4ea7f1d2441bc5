"""One nightly run at a time over a bucket: a lease kept in S3 with create-only writes.

Deployments limit their own runs, but `nightly`, `retrain-now`, `retrain run` and a worker on
another machine are different doors into the same bucket; two nights at once could each start
a fine-tuning job for the same dataset version. So a run takes the lease first.

The lease is a sequence of records under ``state/leases/{name}/``, ``{seq:012d}.json``, each
written create-only (``IfNoneMatch='*'``): of two runs that read the same newest record, exactly
one writes the next (localbucket ignores ``IfMatch``, so no compare-and-swap of one object). A
record names its holder (run id, Prefect flow run id, host, process) and when the lease lapses,
or says it was released or broken. A run may take the lease when the newest record is released
or broken, has lapsed, names a process on this host that is gone, or names a holder the caller
knows has stopped (the nightly task asks Prefect whether the holder's flow run has ended), so a
crashed run started again does not wait. The holder renews the lease while it runs (``held``);
each new record deletes the one before it. An operator frees the lease of a holder that died
unnoticed with ``break_lease`` (`retrain lease break`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from retrain.exceptions import AlreadyExists, RunInProgress, StorageError
from retrain.storage.layout import lease_prefix, lease_record_key
from retrain.storage.object_store import ObjectStore

__all__ = [
    "NIGHTLY",
    "HeldLease",
    "Holder",
    "Lease",
    "LeaseLost",
    "StoppedCheck",
    "acquire",
    "break_lease",
    "current",
    "held",
    "release",
    "renew",
]

logger = logging.getLogger(__name__)

NIGHTLY = "nightly"
"""The lease of everything that ingests or trains: the nightly flow and `retrain ingest`."""

_ATTEMPTS = 5  # create-only races lost in a row before giving up


class LeaseLost(RunInProgress):
    """Another run took the lease after it lapsed (it was not renewed in time), or it was broken."""


def _process_start(pid: int) -> str:
    """When process ``pid`` started (Linux clock ticks since boot), or "" where /proc is absent.

    With the pid it tells a live holder from a new process that reused a dead holder's pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may hold spaces


def _pid_namespace() -> str:
    """The PID namespace of this process (Linux), so containers sharing a host name are told apart."""
    try:
        return str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        return ""


@dataclass(frozen=True)
class Holder:
    run_id: str
    flow_run_id: str | None
    host: str
    pid: int
    process_start: str
    pid_namespace: str = ""

    @classmethod
    def this_process(cls, run_id: str, flow_run_id: str | None = None) -> Holder:
        pid = os.getpid()
        return cls(run_id, flow_run_id, socket.gethostname(), pid, _process_start(pid), _pid_namespace())

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Holder:
        """The holder a lease record names; fields a newer retrain added are ignored (fields added
        later must have defaults, so records of older versions still read)."""
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})

    def describe(self) -> str:
        flow = f", flow run {self.flow_run_id}" if self.flow_run_id else ""
        return f"{self.run_id} ({self.host}, pid {self.pid}{flow})"

    def is_gone(self) -> bool:
        """True only if this holder is a process on this host (and PID namespace) that no longer runs."""
        return self._is_local() and not self._process_runs()

    def runs_here(self) -> bool:
        """True if this holder is a process on this host (and PID namespace) that still runs."""
        return self._is_local() and self._process_runs()

    def _is_local(self) -> bool:
        return self.host == socket.gethostname() and self.pid_namespace == _pid_namespace()

    def _process_runs(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, someone else's
            return True
        return not self.process_start or _process_start(self.pid) in ("", self.process_start)


StoppedCheck = Callable[[Holder], str | None]
"""Why a holder is known to have stopped although its lease has not lapsed, or None if not known."""


def _not_known(holder: Holder) -> str | None:
    return None


@dataclass(frozen=True)
class Lease:
    name: str
    seq: int
    holder: Holder
    expires_at: datetime


def _seq(key: str) -> int:
    return int(key.rsplit("/", 1)[1].split(".")[0])


def _churning(name: str) -> RunInProgress:
    return RunInProgress(f"the {name} lease kept changing hands: another run is starting; try again")


def _newest(store: ObjectStore, name: str) -> tuple[int, dict[str, Any] | None]:
    """(seq, record) of the newest record, or (0, None) for a lease never taken."""
    for _ in range(_ATTEMPTS):
        keys = [info.key for info in store.list(lease_prefix(name))]
        if not keys:
            return 0, None
        record = store.get_json_or_none(keys[-1])
        if record is not None:
            return _seq(keys[-1]), record
        # Deleted by the writer of a newer record since the listing: list again.
    raise _churning(name)


def _write(store: ObjectStore, name: str, seq: int, record: dict[str, Any]) -> None:
    """Write record ``seq`` create-only, check that it is the newest, then drop the one before it.

    Records are deleted as newer ones land, so a writer that read an old newest record could
    create ``seq`` in the gap below a newer record; it then finds the newer one, withdraws its
    record and loses (AlreadyExists), as if ``seq`` had been taken.
    """
    key = lease_record_key(name, seq)
    store.put_json(key, record, create_only=True)
    if any(info.key > key for info in store.list(lease_prefix(name), start_after=key)):
        store.delete(key)
        raise AlreadyExists(f"{store.uri(key)} was written below a newer lease record")
    if seq > 1:
        try:
            store.delete(lease_record_key(name, seq - 1))
        except StorageError as exc:
            logger.warning(
                "could not delete the old lease record %s: %s", lease_record_key(name, seq - 1), exc
            )


def _lease_record(holder: Holder, expires_at: datetime) -> dict[str, Any]:
    return {"holder": asdict(holder), "expires_at": expires_at.isoformat()}


def acquire(
    store: ObjectStore,
    name: str,
    holder: Holder,
    ttl: timedelta,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    stopped: StoppedCheck = _not_known,
) -> Lease:
    """Take the lease ``name`` for ``holder``, or raise RunInProgress naming who holds it.

    ``stopped`` says why the current holder is known to have stopped (see ``StoppedCheck``).
    """
    for _ in range(_ATTEMPTS):
        seq, record = _newest(store, name)
        if record is not None and _is_mine(record, holder):  # a retry after a write whose answer was lost
            return Lease(name, seq, holder, datetime.fromisoformat(record["expires_at"]))
        granted = _granted(name, seq, record)
        if granted is not None:
            other = granted.holder
            why = (
                "that process is gone"
                if other.is_gone()
                else f"it lapsed at {granted.expires_at}"
                if granted.expires_at <= now()
                else stopped(other)
            )
            if why is None:
                raise RunInProgress(
                    f"another {name} run is in progress: {other.describe()} holds the lease until "
                    f"{granted.expires_at:%Y-%m-%d %H:%M:%S} UTC (renewed while it runs); wait for it to "
                    "finish, or if it died unnoticed, free the lease with `retrain lease break`"
                )
            logger.warning("taking the %s lease from %s: %s", name, other.describe(), why)
        lease = Lease(name, seq + 1, holder, now() + ttl)
        try:
            _write(store, name, lease.seq, _lease_record(holder, lease.expires_at))
        except AlreadyExists:
            continue  # another run wrote seq + 1 first: look again
        logger.debug("took the %s lease (record %d) until %s", name, lease.seq, lease.expires_at)
        return lease
    raise _churning(name)


def _is_mine(record: dict[str, Any], holder: Holder) -> bool:
    return record.get("holder") == asdict(holder)


def _newest_if_mine(store: ObjectStore, lease: Lease) -> int | None:
    """The seq of the newest record if it is still this holder's (it may be newer than
    ``lease.seq``: a renewal whose answer was lost can have landed), else None."""
    seq, record = _newest(store, lease.name)
    return seq if record is not None and seq >= lease.seq and _is_mine(record, lease.holder) else None


def renew(
    store: ObjectStore,
    lease: Lease,
    ttl: timedelta,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Lease:
    """Extend the lease; LeaseLost if another run took it meanwhile.

    Like ``acquire``, it writes the record after the newest one it has just read, so a renewal
    that comes too late can never slip in below another run's newer record.
    """
    lost = LeaseLost(
        f"the {lease.name} lease of {lease.holder.describe()} passed to another run: it lapsed, "
        "or an operator broke it"
    )
    seq = _newest_if_mine(store, lease)
    if seq is None:
        raise lost
    renewed = replace(lease, seq=seq + 1, expires_at=now() + ttl)
    try:
        _write(store, lease.name, renewed.seq, _lease_record(lease.holder, renewed.expires_at))
    except AlreadyExists:
        raise lost from None
    return renewed


def release(store: ObjectStore, lease: Lease) -> None:
    """Give the lease up (a no-op, with a warning, if another run took it meanwhile)."""
    seq = _newest_if_mine(store, lease)
    if seq is not None:
        try:
            _write(store, lease.name, seq + 1, {"released_by": asdict(lease.holder)})
            return
        except AlreadyExists:
            pass
    logger.warning(
        "the %s lease had passed to another run before %s released it", lease.name, lease.holder.run_id
    )


def current(store: ObjectStore, name: str) -> Lease | None:
    """The lease the newest record grants (lapsed or not), or None when it is free."""
    seq, record = _newest(store, name)
    return _granted(name, seq, record)


def _granted(name: str, seq: int, record: dict[str, Any] | None) -> Lease | None:
    if record is None or "holder" not in record:
        return None  # never taken, released or broken
    holder = Holder.from_record(record["holder"])
    return Lease(name, seq, holder, datetime.fromisoformat(record["expires_at"]))


def break_lease(store: ObjectStore, lease: Lease, actor: str) -> None:
    """Free ``lease`` for the next run: ``actor``, an operator, knows its holder died unnoticed.

    Breaks it only while ``lease.holder`` still holds it (renewed or not); if that holder is
    alive after all, its next renewal fails with LeaseLost. RunInProgress if the lease changed
    hands since ``lease`` was read.
    """
    by = {"actor": actor, "host": socket.gethostname(), "at": datetime.now(UTC).isoformat()}
    for _ in range(_ATTEMPTS):
        seq = _newest_if_mine(store, lease)
        if seq is None:
            raise RunInProgress(
                f"the {lease.name} lease is no longer held by {lease.holder.describe()}: "
                "look again with `retrain lease show`"
            )
        try:
            _write(store, lease.name, seq + 1, {"broken_by": by, "was": asdict(lease.holder)})
        except AlreadyExists:
            continue  # the holder renewed meanwhile: break the renewed lease
        logger.warning("%s broke the %s lease of %s", actor, lease.name, lease.holder.describe())
        return
    raise _churning(lease.name)


class HeldLease:
    """A lease that ``held`` keeps renewed; ``confirm`` it right before a step that must not run
    twice, such as creating a fine-tuning job."""

    def __init__(self, store: ObjectStore, lease: Lease, ttl: timedelta) -> None:
        self.lease = lease
        self._store = store
        self._ttl = ttl
        self._lock = threading.Lock()
        self._lost: RunInProgress | None = None

    def confirm(self) -> None:
        """Renew the lease now: RunInProgress (LeaseLost) if it has passed to another run, so the
        caller stops before doing what that run may be doing too."""
        with self._lock:
            if self._lost is not None:
                raise self._lost
            try:
                self.lease = renew(self._store, self.lease, self._ttl)
            except RunInProgress as exc:
                self._lost = exc
                raise


@contextmanager
def held(store: ObjectStore, lease: Lease, ttl: timedelta) -> Iterator[HeldLease]:
    """Renew ``lease`` every third of ``ttl`` on a daemon thread while the block runs, then release it."""
    stop = threading.Event()
    keeper = HeldLease(store, lease, ttl)

    def keep() -> None:
        while not stop.wait(ttl.total_seconds() / 3):
            try:
                keeper.confirm()
            except RunInProgress as exc:  # LeaseLost, or the records churning under a new holder
                logger.error("%s", exc)
                return  # confirm() now fails, and release() finds the lease is not ours
            except StorageError as exc:  # transient: the next tick tries again, before the lease lapses
                logger.warning("could not renew the %s lease: %s", lease.name, exc)

    thread = threading.Thread(target=keep, name=f"lease-{lease.name}", daemon=True)
    thread.start()
    try:
        yield keeper
    finally:
        stop.set()
        thread.join()
        try:
            release(store, keeper.lease)
        except StorageError as exc:  # the work is done: the lease lapses on its own
            logger.warning(
                "could not release the %s lease (it lapses at %s): %s",
                lease.name,
                keeper.lease.expires_at,
                exc,
            )
