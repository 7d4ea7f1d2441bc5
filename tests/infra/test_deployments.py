"""`prefect deploy --all` from the repository against a real Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"
FLOW_FILES = ["flows/nightly.py", "flows/rollback.py", "flows/evaluate.py", "flows/train_lora.py"]
EXPECTED = {
    "nightly-retrain/nightly",
    "nightly-retrain/retrain-now",
    "rollback/rollback",
    "evaluate/evaluate",
}


def _prefect(args: list[str], api_url: str) -> None:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    env.pop("RETRAIN_HOME", None)
    prefect = Path(sys.executable).with_name("prefect")
    result = subprocess.run(
        [str(prefect), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def test_yaml_defines_every_deployment_with_one_run_at_a_time() -> None:
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    names = {deployment["name"] for deployment in spec["deployments"]}
    assert names == {"nightly", "retrain-now", "rollback", "evaluate", "train-lora"}
    for deployment in spec["deployments"]:
        training = deployment["name"] == "train-lora"
        strategy = "ENQUEUE" if training else "CANCEL_NEW"
        assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": strategy}
        assert deployment["work_pool"]["name"] == ("retrain-training" if training else "retrain-process")
        entry_file = deployment["entrypoint"].split(":")[0]
        assert entry_file in FLOW_FILES


@pytest.fixture(scope="module")
def deployed(prefect_api_url: str) -> dict[str, Any]:
    missing = [name for name in FLOW_FILES if not (ROOT / name).exists()]
    if missing:
        pytest.skip(f"flow files not written yet: {', '.join(missing)} (deploy --all needs every entrypoint)")
    from prefect.client.orchestration import get_client

    for pool in ("retrain-process", "retrain-training"):
        _prefect(["work-pool", "create", pool, "--type", "process", "--overwrite"], prefect_api_url)
    _prefect(["--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML)], prefect_api_url)
    with get_client(sync_client=True) as client:
        flows = {flow.id: flow.name for flow in client.read_flows()}
        return {f"{flows[d.flow_id]}/{d.name}": d for d in client.read_deployments()}


@pytest.mark.slow
def test_deploy_all_creates_every_deployment(deployed: dict[str, Any]) -> None:
    assert set(deployed) >= EXPECTED
    for name in EXPECTED:
        deployment = deployed[name]
        assert deployment.work_pool_name == "retrain-process"
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $RETRAIN_HOME }}"}}
        ]


@pytest.mark.slow
def test_train_lora_runs_on_the_training_pool_one_at_a_time(deployed: dict[str, Any]) -> None:
    deployment = deployed["train-lora/train-lora"]
    assert deployment.work_pool_name == "retrain-training"
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert deployment.schedules == []


@pytest.mark.slow
def test_only_nightly_is_scheduled_at_two_utc(deployed: dict[str, Any]) -> None:
    [schedule] = deployed["nightly-retrain/nightly"].schedules
    assert schedule.active
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "UTC"
    for name in EXPECTED - {"nightly-retrain/nightly"}:
        assert deployed[name].schedules == []


@pytest.mark.slow
def test_parameters_and_tags(deployed: dict[str, Any]) -> None:
    assert deployed["nightly-retrain/nightly"].parameters == {"night": None}
    assert "scheduled" in deployed["nightly-retrain/nightly"].tags
    assert "manual" in deployed["nightly-retrain/retrain-now"].tags
    assert deployed["rollback/rollback"].parameters == {"alias": "production", "steps": 1}
    assert deployed["evaluate/evaluate"].parameters == {"eval_set": "main"}
    schema = deployed["evaluate/evaluate"].parameter_openapi_schema
    assert set(schema["required"]) == {"candidate"}
