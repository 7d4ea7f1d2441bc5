"""The nightly lease: one nightly run at a time over a bucket (logic in retrain.run_lease)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from prefect import get_run_logger, task
from prefect.runtime import flow_run

from retrain.run_lease import NIGHTLY, Holder, Lease, acquire, held
from retrain.settings import get_settings
from retrain.storage import ObjectStore
from tasks.retry import IO_TASK

__all__ = ["nightly_lease_held", "take_nightly_lease"]


def _ttl() -> timedelta:
    return get_settings().orchestration.run_lease


@task(name="take-nightly-lease", **IO_TASK)
def take_nightly_lease(run_id: str) -> Lease:
    """Fails at once (RunInProgress, not retried) while another nightly run holds the lease."""
    store = ObjectStore.from_settings(get_settings().s3)
    lease = acquire(store, NIGHTLY, Holder.this_process(run_id, flow_run.id), _ttl())
    get_run_logger().info("%s holds the nightly lease until %s", run_id, f"{lease.expires_at:%H:%M:%S} UTC")
    return lease


@contextmanager
def nightly_lease_held(lease: Lease) -> Iterator[None]:
    """Renew the lease while the block runs; release it after, however the block ends."""
    with held(ObjectStore.from_settings(get_settings().s3), lease, _ttl()):
        yield
