"""Evaluation fan-out on Dask: `evaluate_sets` with RETRAIN_ORCHESTRATION__TASK_RUNNER=dask runs
each eval set as a task on a real Dask cluster (worker processes) inside a flow run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect import flow

from retrain.config.settings import get_settings
from retrain.evaluate.eval_sets import put_eval_set
from retrain.evaluate.results import EvalReport
from retrain.evaluate.targets import ModelTarget
from retrain.local.synthetic import make_eval_set
from tasks.evaluate import evaluate_sets, evaluation_task_runner
from tests.pipeline.conftest import Stack

pytestmark = pytest.mark.slow

BASE = "gpt-4o-mini-2024-07-18"


@flow(name="dask-fan-out-test")
def _evaluate_two_sets(targets: list[ModelTarget]) -> dict[str, EvalReport]:
    return evaluate_sets(targets, {"main": "dask-main", "second": "dask-second"})


@pytest.fixture
def dask_address(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from distributed import LocalCluster

    put_eval_set(stack.store, "second", make_eval_set(30, seed=7))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        monkeypatch.setenv("RETRAIN_ORCHESTRATION__TASK_RUNNER", "dask")
        monkeypatch.setenv("RETRAIN_ORCHESTRATION__DASK_ADDRESS", cluster.scheduler_address)
        get_settings.cache_clear()
        yield str(cluster.scheduler_address)
    get_settings.cache_clear()


def test_eval_sets_run_as_tasks_on_the_dask_cluster(dask_address: str) -> None:
    from distributed import Client
    from prefect_dask.task_runners import DaskTaskRunner

    settings = get_settings()
    runner = evaluation_task_runner(settings.orchestration)
    assert isinstance(runner, DaskTaskRunner) and runner.address == dask_address
    targets = [
        ModelTarget("candidate", BASE, settings.provider),
        ModelTarget("production", BASE, settings.provider),
    ]
    with Client(dask_address) as client:
        before = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
        reports = _evaluate_two_sets(targets)
        after = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
    assert after > before, "no task went through the Dask scheduler"
    assert {name: len(report.models["candidate"].scores) for name, report in reports.items()} == {
        "main": 120,
        "second": 30,
    }
    assert reports["main"].models["production"].model_id == BASE


def test_thread_runner_is_the_default() -> None:
    from prefect.task_runners import ThreadPoolTaskRunner

    assert isinstance(evaluation_task_runner(get_settings().orchestration), ThreadPoolTaskRunner)
