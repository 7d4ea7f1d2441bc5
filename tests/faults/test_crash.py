"""Crash tests: the nightly flow runs in a subprocess that is killed with SIGKILL at the worst moments.

The same night is killed three times in a row: right after the training files were uploaded,
right after the job was created, and while the job is being polled. Each re-run uploads
nothing twice and creates no second job, and the last one finishes the night (the candidate
is promoted once).
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

from retrain.storage.layout import UPLOAD_PREFIX as UPLOAD_STATE
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


def test_killed_after_the_upload_after_the_job_was_created_and_while_polling(
    stack: Stack, tmp_path: Path
) -> None:
    land(stack, NIGHT)
    log = tmp_path / "night.log"

    # 1. Right after the upload: the job lookup that follows hangs, so no job exists yet.
    set_faults(stack, rules=[{"route": "/fine_tuning/jobs", "method": "GET", "kind": "slow", "delay": 30}])
    with night_in_subprocess(tmp_path) as process:
        kill_when(process, lambda: len(list(stack.store.list(UPLOAD_STATE))) == 2, log)
    files = uploaded_files(stack)
    assert len(files) == 2 and jobs(stack) == []

    # 2. Right after the job was created (jobs are held, so it cannot finish first).
    set_faults(stack, hold_jobs=True)
    with night_in_subprocess(tmp_path) as process:
        kill_when(process, lambda: bool(jobs(stack)), log)
    (job,) = jobs(stack)
    assert uploaded_files(stack) == files

    # 3. While the job is being polled.
    start = polls(stack)
    with night_in_subprocess(tmp_path) as process:
        kill_when(process, lambda: polls(stack) >= start + 3, log)
    assert [(j.id, j.status) for j in jobs(stack)] == [(job.id, "running")]
    assert uploaded_files(stack) == files
    assert production_history(stack) == []
    assert_consistent(stack)

    set_faults(stack)
    state = run(NIGHT)
    assert state.is_completed() and "promoted" in state.message, state.message
    assert uploaded_files(stack) == files
    (done,) = jobs(stack)
    assert done.id == job.id and done.status == "succeeded"
    assert production_history(stack) == [("promote", done.fine_tuned_model)]
    assert_consistent(stack)
