"""`retrain run` and `retrain serve` from a shell: wrong settings and failed runs end in one line,
not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrain.config.services import S3Settings
from tests.pipeline.conftest import Stack
from tests.pipeline.test_nightly_flow import run_logs
from tests.s3_servers import free_port

pytestmark = pytest.mark.slow

RETRAIN = Path(sys.executable).parent / "retrain"


def retrain(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RETRAIN), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_missing_bucket_is_one_line_before_any_flow_starts(
    s3_env: S3Settings, tmp_path: Path, command: str
) -> None:
    done = retrain(command, RETRAIN_S3__BUCKET="no-such-bucket", RETRAIN_LOCAL__DATA_DIR=str(tmp_path))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: bucket 'no-such-bucket' does not exist: create it or set RETRAIN_S3__BUCKET"
    ]


@pytest.mark.parametrize(
    "command", [["run"], ["serve"], ["automations", "apply", "--webhook-url", "http://x"]]
)
def test_a_prefect_api_that_does_not_answer_is_one_line_without_its_credentials(
    s3_env: S3Settings, tmp_path: Path, command: list[str]
) -> None:
    port = free_port()
    done = retrain(
        *command,
        PREFECT_API_URL=f"http://ops:hunter2-pw@127.0.0.1:{port}/api",
        RETRAIN_LOCAL__DATA_DIR=str(tmp_path),
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: cannot use the Prefect API at http://127.0.0.1:{port}/api (ConnectError: [Errno 111] "
        "Connection refused): start that Prefect server (`retrain local up --with-prefect` starts one "
        "on this machine) or fix PREFECT_API_URL"
    ]


def test_serve_warns_at_start_up_when_training_on_openai(s3_env: S3Settings, tmp_path: Path) -> None:
    done = retrain(
        "serve",
        PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api",
        RETRAIN_LOCAL__DATA_DIR=str(tmp_path),
        RETRAIN_PROVIDER__KIND="openai",
        RETRAIN_PROVIDER__NAME="openai",
        RETRAIN_PROVIDER__API_KEY="sk-test-3f9a7c1e5b2d4f60a8e1",
    )
    [warning] = done.stdout.splitlines()
    assert warning.startswith(
        "warning: training provider 'openai' is OpenAI's API, which takes no new fine-tuning jobs"
    )
    assert "sk-test" not in done.stdout + done.stderr
    assert done.returncode == 1 and "cannot use the Prefect API" in done.stderr


def test_a_night_that_fails_on_our_error_says_so_in_one_line_and_the_ui_keeps_the_traceback(
    stack: Stack,
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value())
    # No eval set under this prefix: the night stops at load-eval-prompts.
    done = retrain("run", "--night", "2031-01-01", RETRAIN_S3__PREFIX="empty", PREFECT_API_URL=api)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert (
        "Failed: Flow run encountered an exception: EvaluationError: eval set 'main' not found"
        in " ".join(done.stdout.split())
    )

    with get_client(sync_client=True) as prefect:
        (flow_run,) = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["retrain-2031-01-01"]))
        )
    logs = run_logs(flow_run.id)
    assert any("Traceback" in log.message and "EvaluationError" in log.message for log in logs)

    debugged = retrain(
        "--debug", "run", "--night", "2031-01-02", RETRAIN_S3__PREFIX="empty", PREFECT_API_URL=api
    )
    assert debugged.returncode == 1
    assert "Traceback" in debugged.stdout + debugged.stderr
