"""Cancelling: the nightly flow's on_cancellation hook, and `retrain jobs list|show|cancel`."""

from __future__ import annotations

import json
from datetime import date

import pytest
from openai import OpenAI
from prefect import get_client
from prefect.states import Cancelling
from typer.testing import CliRunner

from flows.nightly import nightly_retrain
from retrain.cli.main import app
from retrain.storage.object_store import ObjectStore
from retrain.train.job_spec import job_spec
from retrain.train.jobs import ensure_job
from retrain.train.uploads import upload_training_file
from tasks.training import cancel_training_of_run
from tests.pipeline.conftest import Stack

from .conftest import chat_file

pytestmark = pytest.mark.slow


def _hanging_job(stack: Stack, client: OpenAI, version: str, owner: str | None) -> str:
    stack.admin("POST", "/admin/faults", json={"next_job": "hang"})
    provider = stack.settings.provider
    train = upload_training_file(
        client, stack.store, provider, chat_file(30, hash(version) % 1000), role="train"
    )
    spec = job_spec(stack.settings.training, dataset_version=version, run_id="r", night=date(2026, 11, 1))
    created = ensure_job(
        client, stack.store, provider, spec, training_file=train, validation_file=None, owner=owner
    )
    return created.job.id


def _record(store: ObjectStore, job_id: str) -> dict[str, object]:
    records = [store.get_json(info.key) for info in store.list("state/jobs/")]
    return next(r for r in records if r["job_id"] == job_id)


def test_cancelling_a_flow_run_cancels_its_job_only(stack: Stack) -> None:
    """The hook called as Prefect calls it, with a real flow run of the nightly flow in Cancelling."""
    client = OpenAI(base_url=stack.settings.provider.base_url, api_key="x", max_retries=0)
    with get_client(sync_client=True) as prefect:
        run = prefect.create_flow_run(nightly_retrain, parameters={"night": "2026-11-01"})
        prefect.set_flow_run_state(run.id, Cancelling(), force=True)
        run = prefect.read_flow_run(run.id)
    ours = _hanging_job(stack, client, "ds-ours", owner=str(run.id))
    theirs = _hanging_job(stack, client, "ds-theirs", owner="another-flow-run")
    assert client.fine_tuning.jobs.retrieve(ours).status in ("validating_files", "queued", "running")

    assert run.state is not None
    cancel_training_of_run(nightly_retrain, run, run.state)

    assert client.fine_tuning.jobs.retrieve(ours).status == "cancelled"
    assert _record(stack.store, ours)["status"] == "cancelled"
    assert client.fine_tuning.jobs.retrieve(theirs).status in ("validating_files", "queued", "running")
    assert cancel_training_of_run in nightly_retrain.on_cancellation_hooks
    # A second cancellation finds nothing left to cancel.
    cancel_training_of_run(nightly_retrain, run, run.state)
    client.fine_tuning.jobs.cancel(theirs)


def test_jobs_cli_lists_shows_and_cancels(stack: Stack) -> None:
    client = OpenAI(base_url=stack.settings.provider.base_url, api_key="x", max_retries=0)
    job_id = _hanging_job(stack, client, "ds-cli", owner=None)
    runner = CliRunner(env={"COLUMNS": "250"})

    listed = runner.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    assert job_id in listed.output and "ds-cli" in listed.output
    as_json = runner.invoke(app, ["jobs", "list", "--json"])
    assert as_json.exit_code == 0, as_json.output
    listed_job = next(job for job in json.loads(as_json.output) if job["id"] == job_id)
    assert listed_job["metadata"]["dataset_version"] == "ds-cli" and listed_job["status"] == "running"

    shown = runner.invoke(app, ["jobs", "show", job_id])
    assert shown.exit_code == 0, shown.output
    assert "dataset_version" in shown.output and "gpt-4o-mini" in shown.output

    cancelled = runner.invoke(app, ["jobs", "cancel", job_id])
    assert cancelled.exit_code == 0, cancelled.output
    assert "-> cancelled" in cancelled.output
    assert client.fine_tuning.jobs.retrieve(job_id).status == "cancelled"
    assert _record(stack.store, job_id)["status"] == "cancelled"

    again = runner.invoke(app, ["jobs", "cancel", job_id])
    assert again.exit_code == 0 and "already ended" in again.output

    missing = runner.invoke(app, ["jobs", "show", "ftjob-doesnotexist"])
    assert missing.exit_code == 1
    assert "ftjob-doesnotexist" in missing.output and "Traceback" not in missing.output
    assert len(missing.output.strip().splitlines()) == 1, missing.output

    unknown = runner.invoke(app, ["jobs", "list", "--provider", "nowhere"])
    assert unknown.exit_code == 1 and "not configured" in unknown.output
