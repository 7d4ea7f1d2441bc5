"""Crash tests: the nightly flow runs in a subprocess that is killed with SIGKILL at the worst moments.

After a kill right after the training file upload, right after the job was created, and
while the job is being polled, a re-run uploads nothing twice, creates no second job, and
finishes the night (the candidate is promoted once).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from retrain.finetune import UPLOAD_STATE
from tests.pipeline.conftest import Stack

from .support import assert_consistent, jobs, land, production_history, run, set_faults, uploaded_files

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NIGHT = "2026-11-01"


@contextmanager
def night_in_subprocess(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    log = tmp_path / "night.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.night", NIGHT], cwd=ROOT, env=env, stdout=out, stderr=out
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path) -> None:
    """SIGKILL the process as soon as ``ready()`` holds; fail if it ended or took too long first."""
    deadline = time.monotonic() + 120
    while not ready():
        if process.poll() is not None:
            pytest.fail(
                f"the night ended (exit {process.returncode}) before the kill point:\n{log.read_text()}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"the kill point was not reached in time:\n{log.read_text()}")
        time.sleep(0.05)
    process.kill()
    assert process.wait(timeout=30) == -9


def polls(stack: Stack) -> int:
    routes = stack.admin("GET", "/admin/stats").json()["routes"]
    return int(routes.get("GET /fine_tuning/jobs/{job_id}", 0))


def rerun_finishes_the_night_once(stack: Stack, files: list[str], killed_job: str | None) -> None:
    set_faults(stack)
    state = run(NIGHT)
    assert state.is_completed() and "promoted" in state.message, state.message
    assert uploaded_files(stack) == files
    (job,) = jobs(stack)
    assert killed_job in (None, job.id)
    assert production_history(stack) == [("promote", job.fine_tuned_model)]
    assert_consistent(stack)


def test_killed_right_after_the_upload(stack: Stack, tmp_path: Path) -> None:
    land(stack, NIGHT)
    # The job lookup that follows the upload hangs, so the kill lands before any job exists.
    set_faults(stack, rules=[{"route": "/fine_tuning/jobs", "method": "GET", "kind": "slow", "delay": 30}])
    with night_in_subprocess(tmp_path) as process:
        kill_when(process, lambda: len(list(stack.store.list(UPLOAD_STATE))) == 2, tmp_path / "night.log")
    files = uploaded_files(stack)
    assert len(files) == 2 and jobs(stack) == []
    rerun_finishes_the_night_once(stack, files, None)


def test_killed_right_after_the_job_was_created(stack: Stack, tmp_path: Path) -> None:
    land(stack, NIGHT)
    set_faults(stack, hold_jobs=True)
    with night_in_subprocess(tmp_path) as process:
        kill_when(process, lambda: bool(jobs(stack)), tmp_path / "night.log")
    (job,) = jobs(stack)
    rerun_finishes_the_night_once(stack, uploaded_files(stack), job.id)


def test_killed_while_polling_the_job(stack: Stack, tmp_path: Path) -> None:
    land(stack, NIGHT)
    set_faults(stack, hold_jobs=True)
    with night_in_subprocess(tmp_path) as process:
        kill_when(process, lambda: polls(stack) >= 3, tmp_path / "night.log")
    (job,) = jobs(stack)
    assert job.status == "running"
    rerun_finishes_the_night_once(stack, uploaded_files(stack), job.id)
