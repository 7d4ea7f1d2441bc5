"""The nightly lease: one nightly run at a time over a bucket (logic in retrain.ingest.lease)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from uuid import UUID

import httpx
from prefect import get_client, get_run_logger, task
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run

from retrain.exceptions import RunInProgress
from retrain.ingest.lease import NIGHTLY, HeldLease, Holder, Lease, LeaseLost, acquire, held
from tasks.context import TaskContext, task_context
from tasks.retry import IO_TASK

__all__ = ["confirm_nightly_lease", "nightly_lease_held", "take_nightly_lease"]


def _ttl(context: TaskContext) -> timedelta:
    return context.settings.orchestration.run_lease


def _flow_run_ended(holder: Holder) -> str | None:
    """Why ``holder`` has stopped, as Prefect knows it: its flow run is in a final state, or is
    this very flow run (which Prefect runs in one process at a time, so the holder was an earlier
    attempt of it, e.g. on a pod that died). None if Prefect does not know the holder's flow run.

    A pod or container that died takes its host name with it, so without this a re-run on a new
    one would wait for the dead holder's lease to lapse.
    """
    if not holder.flow_run_id:
        return None
    if holder.flow_run_id == flow_run.id:
        return "it was an earlier attempt of this flow run"
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(holder.flow_run_id)).state
    except (ObjectNotFound, ValueError):  # another Prefect server's run, or not a flow run id
        return None
    except httpx.HTTPError as exc:  # not known, then: the lease stands
        get_run_logger().warning("could not read the lease holder's flow run from Prefect: %s", exc)
        return None
    if state is None or not state.is_final():
        return None
    return f"its flow run {holder.flow_run_id} ended {state.name}"


@task(name="take-nightly-lease", **IO_TASK)
def take_nightly_lease(run_id: str) -> Lease:
    """Fails at once (RunInProgress, not retried) while another nightly run holds the lease.

    A holder whose Prefect flow run has ended is taken over at once (``_flow_run_ended``).
    """
    context = task_context()
    holder = Holder.this_process(run_id, flow_run.id)
    lease = acquire(context.store, NIGHTLY, holder, _ttl(context), stopped=_flow_run_ended)
    get_run_logger().info("%s holds the nightly lease until %s", run_id, f"{lease.expires_at:%H:%M:%S} UTC")
    return lease


@contextmanager
def nightly_lease_held(lease: Lease) -> Iterator[HeldLease]:
    """Renew the lease while the block runs; release it after, however the block ends."""
    context = task_context()
    with held(context.store, lease, _ttl(context)) as keeper:
        yield keeper


@task(name="confirm-nightly-lease", **IO_TASK)
def confirm_nightly_lease(lease: HeldLease, before: str) -> None:
    """Fails (LeaseLost, not retried) if the lease passed to another run: it lapsed while this run
    stalled, or an operator broke it. Then this run stops ``before`` what the other may do too."""
    try:
        lease.confirm()
    except RunInProgress as exc:
        raise LeaseLost(f"{exc}; stopped before {before}") from exc
    get_run_logger().info("still holds the nightly lease, until %s", f"{lease.lease.expires_at:%H:%M:%S} UTC")
