"""The local stack with Prefect, end to end: `retrain local up --with-prefect` (server, pool,
deployments, worker), one nightly run through the `retrain-now` deployment, the run page in
headless Chromium, and CANCEL_NEW for a second run of a deployment while one is in progress.

Everything talks to the local Prefect server over its REST API (the session's test harness,
if another test started it, stays out of the way).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from retrain import local as local_stack
from retrain.cli.local import app
from retrain.config.settings import Settings, get_settings, load_settings
from retrain.local.demo import NIGHTS, land_night, seed_eval_set
from retrain.storage.object_store import ObjectStore
from tests.s3_servers import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
RETRAIN = Path(sys.executable).with_name("retrain")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
FIRST_NIGHT = NIGHTS[0]


class _RetryBusy(httpx.HTTPTransport):
    """Retries 503s: the SQLite-backed server answers 503 when its database is busy (a loaded CI box)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(7):
            response = super().handle_request(request)
            if response.status_code != 503:
                return response
            response.close()
            time.sleep(0.5 * (attempt + 1))
        return super().handle_request(request)


@dataclass
class Stack:
    settings: Settings
    api: httpx.Client
    ui_url: str


def _deployment_id(api: httpx.Client, name: str) -> str:
    response = api.get(f"/deployments/name/{name}")
    response.raise_for_status()
    return str(response.json()["id"])


def _run_deployment(api: httpx.Client, name: str, night: str) -> str:
    response = api.post(
        f"/deployments/{_deployment_id(api, name)}/create_flow_run", json={"parameters": {"night": night}}
    )
    response.raise_for_status()
    return str(response.json()["id"])


def _wait_finished(api: httpx.Client, run_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = api.get(f"/flow_runs/{run_id}").raise_for_status().json()
        if run["state_type"] in TERMINAL:
            return run
        assert time.monotonic() < deadline, f"flow run {run_id} still {run['state_name']} after {timeout} s"
        time.sleep(1)


def _artifact_keys(api: httpx.Client, run_id: str) -> set[str]:
    response = api.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    return {artifact["key"] for artifact in response.raise_for_status().json() if artifact["key"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ports = {name: free_port() for name in ("S3", "OPENAI", "PREFECT")}
    env = {f"RETRAIN_LOCAL__{name}_PORT": str(port) for name, port in ports.items()}
    env |= {
        "RETRAIN_LOCAL__DATA_DIR": str(tmp_path_factory.mktemp("ui-stack")),
        "RETRAIN_LOCAL__OPENAI_STEP_DELAY": "0.005",
        "RETRAIN_S3__ENDPOINT_URL": f"http://127.0.0.1:{ports['S3']}",
        "RETRAIN_PROVIDER__BASE_URL": f"http://127.0.0.1:{ports['OPENAI']}/v1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        settings = load_settings()
        try:
            result = CliRunner().invoke(app, ["up", "--with-prefect"])
            assert result.exit_code == 0, result.output
            api_url = local_stack.prefect_api_url(settings)
            assert f"export PREFECT_API_URL={api_url}" in result.output
            with httpx.Client(base_url=api_url, timeout=60, transport=_RetryBusy()) as api:
                yield Stack(settings, api, api_url.removesuffix("/api"))
        finally:
            local_stack.down(settings)
            get_settings.cache_clear()
    assert not local_stack.status(settings).running


def test_status_lists_the_prefect_server_and_its_worker(stack: Stack) -> None:
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "prefect" in result.output and "worker" in result.output
    pool = stack.api.get(f"/work_pools/{local_stack.PREFECT_POOL}").raise_for_status().json()
    assert pool["type"] == "process" and pool["status"] == "READY"
    names = {d["name"] for d in stack.api.post("/deployments/filter", json={}).raise_for_status().json()}
    assert names >= {"nightly", "retrain-now", "rollback", "evaluate"}
    assert (stack.settings.local.data_dir / "prefect" / "prefect.db").is_file()


def test_check_points_at_the_running_local_prefect_server(stack: Stack) -> None:
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    done = subprocess.run(
        [str(RETRAIN), "check"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    api_url = local_stack.prefect_api_url(stack.settings)
    assert f"export PREFECT_API_URL={api_url}" in " ".join(done.stdout.split()), done.stdout + done.stderr


@pytest.fixture(scope="module")
def nightly_run(stack: Stack) -> dict[str, Any]:
    """One nightly flow run through the `retrain-now` deployment, executed by the stack's worker."""
    store = ObjectStore.from_settings(stack.settings.s3)
    seed_eval_set(store, stack.settings.evaluation.eval_set, n=120)
    land_night(store, FIRST_NIGHT)
    run_id = _run_deployment(stack.api, "nightly-retrain/retrain-now", FIRST_NIGHT.night.isoformat())
    return _wait_finished(stack.api, run_id)


def test_nightly_deployment_run_completes_with_its_artifacts(
    nightly_run: dict[str, Any], stack: Stack
) -> None:
    assert nightly_run["state_type"] == "COMPLETED", nightly_run["state"]
    assert nightly_run["state_name"] == "Promoted"
    assert nightly_run["state"]["message"].startswith("candidate promoted")
    assert nightly_run["work_pool_name"] == local_stack.PREFECT_POOL
    keys = _artifact_keys(stack.api, nightly_run["id"])
    expected = {"night-summary", "promotion-decision", "validation-summary", "eval-comparison-main"}
    assert expected | {"training-metrics", "validation-progress", "training-progress"} <= keys


@pytest.mark.browser
def test_the_prefect_ui_shows_the_completed_run_and_its_promotion_decision(
    nightly_run: dict[str, Any], stack: Stack
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            f"needs Debian's chromium at {CHROMIUM}: apt-get install -y chromium (make test does, as root)"
        )
    from playwright.sync_api import expect, sync_playwright

    assert nightly_run["state_type"] == "COMPLETED"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "prefect-ui-nightly-run.png"
    screenshot.unlink(missing_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{stack.ui_url}/runs/flow-run/{nightly_run['id']}")
            expect(page.get_by_text(nightly_run["name"], exact=True).first).to_be_visible(timeout=60_000)
            expect(page.locator(".state-badge", has_text="Promoted").first).to_be_visible()
            page.get_by_text("Artifacts", exact=True).first.click()
            card = page.locator(".artifact-card__title", has_text="promotion-decision")
            expect(card).to_be_visible(timeout=60_000)
            card.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def rejected_run(nightly_run: dict[str, Any], stack: Stack) -> dict[str, Any]:
    """After the first night, the demo's bad export (90% wrong answers): its candidate is rejected."""
    bad = NIGHTS[2]
    land_night(ObjectStore.from_settings(stack.settings.s3), bad)
    return _wait_finished(
        stack.api, _run_deployment(stack.api, "nightly-retrain/retrain-now", bad.night.isoformat())
    )


def _images_loaded(page: Any) -> list[int]:
    """The natural width of each image on the page (0: it did not load)."""
    return list(page.eval_on_selector_all("img", "images => images.map(image => image.naturalWidth)"))


@pytest.mark.browser
def test_a_rejected_night_shows_its_outcome_and_its_summary_first_with_charts(
    rejected_run: dict[str, Any], nightly_run: dict[str, Any], stack: Stack
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import expect, sync_playwright

    assert rejected_run["state_name"] == "Rejected", rejected_run["state"]
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {
        name: ARTIFACTS / f"prefect-ui-{name}.png" for name in ("run-list", "rejected-run", "night-summary")
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{stack.ui_url}/runs")
            for name in ("Rejected", "Promoted"):
                expect(page.locator(".state-badge", has_text=name).first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(shots["run-list"]), full_page=True)

            page.goto(f"{stack.ui_url}/runs/flow-run/{rejected_run['id']}")
            expect(page.locator(".state-badge", has_text="Rejected").first).to_be_visible(timeout=60_000)
            page.get_by_text("Artifacts", exact=True).first.click()
            first = page.locator(".artifact-card__title").first
            expect(first).to_have_text("night-summary", timeout=60_000)
            page.screenshot(path=str(shots["rejected-run"]), full_page=True)

            first.click()
            expect(page.get_by_text("How the candidate compared with production").first).to_be_visible(
                timeout=60_000
            )
            page.wait_for_function(
                "[...document.images].length >= 2 && [...document.images].every(i => i.complete)"
            )
            widths = _images_loaded(page)
            assert len(widths) >= 2 and all(width > 0 for width in widths), (
                widths
            )  # loss curve, score history
            page.screenshot(path=str(shots["night-summary"]), full_page=True)
        finally:
            browser.close()
    assert all(shot.stat().st_size > 10_000 for shot in shots.values())


def test_a_second_run_while_one_is_in_progress_is_cancelled_not_queued(
    nightly_run: dict[str, Any], stack: Stack
) -> None:
    """Two runs of the scheduled deployment reach the worker in one poll: one runs, one is cancelled."""
    pool = f"/work_pools/{local_stack.PREFECT_POOL}"
    night = FIRST_NIGHT.night.isoformat()
    stack.api.patch(pool, json={"is_paused": True}).raise_for_status()
    try:
        run_ids = [_run_deployment(stack.api, "nightly-retrain/nightly", night) for _ in range(2)]
    finally:
        stack.api.patch(pool, json={"is_paused": False}).raise_for_status()
    runs = [_wait_finished(stack.api, run_id) for run_id in run_ids]
    states = sorted(run["state_type"] for run in runs)
    assert states == ["CANCELLED", "COMPLETED"], [run["state"] for run in runs]
    [cancelled] = [run for run in runs if run["state_type"] == "CANCELLED"]
    assert "concurrency" in cancelled["state"]["message"].lower()
    history = stack.api.get(f"/flow_run_states/?flow_run_id={cancelled['id']}").raise_for_status().json()
    names = [state["name"] for state in history]
    assert "AwaitingConcurrencySlot" not in names and "Running" not in names, names


def _cli_env(stack: Stack) -> dict[str, str]:
    env = {**os.environ, "PREFECT_API_URL": local_stack.prefect_api_url(stack.settings)}
    return env | local_stack.prefect_env(stack.settings)


def test_retrain_run_via_deployment_is_executed_by_the_worker(
    nightly_run: dict[str, Any], stack: Stack
) -> None:
    result = subprocess.run(
        [str(RETRAIN), "run", "--via-deployment", "--night", "2026-11-20"],
        env=_cli_env(stack),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    assert "flow run retrain-2026-11-20 (" in output and ") of nightly-retrain/retrain-now" in output
    assert "NoNewData: no new data" in output
    runs = stack.api.post("/flow_runs/filter", json={}).raise_for_status().json()
    [run] = [run for run in runs if run["name"] == "retrain-2026-11-20"]
    assert run["state_type"] == "COMPLETED" and run["work_pool_name"] == local_stack.PREFECT_POOL


SERVED = ("nightly-retrain/nightly", "nightly-retrain/retrain-now", "rollback/rollback", "evaluate/evaluate")


def _served_deployments(api: httpx.Client) -> dict[str, dict[str, Any]]:
    served = {}
    for name in SERVED:
        response = api.get(f"/deployments/name/{name}")
        if response.status_code == 200 and "served" in response.json()["tags"]:
            served[name] = response.json()
    return served


def test_retrain_serve_serves_the_deployments_with_the_schedule_and_runs_them(
    nightly_run: dict[str, Any], stack: Stack
) -> None:
    """Last in this module: `retrain serve` replaces the work-pool deployments (same names)."""
    for deployment in stack.api.post("/deployments/filter", json={}).raise_for_status().json():
        stack.api.delete(f"/deployments/{deployment['id']}").raise_for_status()
    env = _cli_env(stack) | {"PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    with (stack.settings.local.data_dir / "logs" / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [str(RETRAIN), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while len(served := _served_deployments(stack.api)) < len(SERVED):
            assert server.poll() is None, "retrain serve exited"
            assert time.monotonic() < deadline, f"retrain serve created only {sorted(served)}"
            time.sleep(1)
        [schedule] = served["nightly-retrain/nightly"]["schedules"]
        assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["schedule"]["timezone"] == "UTC"
        for name, deployment in served.items():
            assert deployment["work_pool_name"] is None
            assert name == "nightly-retrain/nightly" or deployment["schedules"] == []
            assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
            assert deployment["global_concurrency_limit"]["limit"] == 1
        run = _wait_finished(
            stack.api, _run_deployment(stack.api, "nightly-retrain/retrain-now", "2026-11-21")
        )
        assert run["state_type"] == "COMPLETED", run["state"]
        assert run["work_pool_name"] is None
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
