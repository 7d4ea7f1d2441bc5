"""The Prefect part of the local stack (``up`` with ``with_prefect``): a Prefect server, the
process work pool, the deployments of ``deployments/prefect.yaml`` and a process worker.

The Prefect server keeps its SQLite database under ``<data_dir>/prefect`` (its
``PREFECT_HOME``), with telemetry off. Before its worker starts, the work pool is created and
the deployments are applied (``deploy``), so the nightly deployment can run at once.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from retrain.config.settings import Settings
from retrain.exceptions import ConfigError, RetrainError
from retrain.local.processes import Service, healthy, our_pid, service_files

__all__ = [
    "PREFECT_FILE",
    "PREFECT_POOL",
    "TRAINING_POOL",
    "checkout_root",
    "deploy",
    "prefect_api_url",
    "prefect_env",
    "prefect_services",
    "running_prefect_api_url",
]

logger = logging.getLogger(__name__)

_PREFECT_START_TIMEOUT = 180.0
PREFECT_FILE = Path("deployments") / "prefect.yaml"
PREFECT_POOL = "retrain-process"
TRAINING_POOL = "retrain-training"  # train-lora's pool: a process pool here, a GPU pool in production
_PREFECT = [sys.executable, "-m", "prefect"]


def prefect_services(settings: Settings, stack_env: dict[str, str]) -> list[Service]:
    """The Prefect server and a process worker of the pool (and, for the lora backend, one of the
    training pool); ``stack_env`` points the workers' flow runs at the local stack."""
    local = settings.local
    worker_env = {
        **stack_env,
        **prefect_env(settings),
        "PREFECT_API_URL": prefect_api_url(settings),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "RETRAIN_HOME": str(checkout_root()),
        "RETRAIN_LOCAL__DATA_DIR": str(local.data_dir.resolve()),
    }
    services = [_server(settings), _worker(settings, "worker", PREFECT_POOL, worker_env)]
    if settings.training.backend == "lora":
        services.append(_worker(settings, "training-worker", TRAINING_POOL, worker_env))
    return services


def _worker(settings: Settings, name: str, pool: str, env: dict[str, str]) -> Service:
    pool_url = f"{prefect_api_url(settings)}/work_pools/{pool}"
    return Service(
        name,
        0,
        f"pool {pool}",
        pool_url,
        [*_PREFECT, "worker", "start", "--pool", pool, "--type", "process"],
        "prefect",
        RetrainError,
        env=env,
        ready=lambda: _pool_ready(pool_url),
        start_timeout=_PREFECT_START_TIMEOUT,
    )


def _server(settings: Settings) -> Service:
    local = settings.local
    api_url = prefect_api_url(settings)
    return Service(
        "prefect",
        local.prefect_port,
        api_url.removesuffix("/api"),
        f"{api_url}/health",
        [*_PREFECT, "server", "start", "--host", local.host, "--port", str(local.prefect_port)],
        "prefect",
        RetrainError,
        env={**prefect_env(settings), "PREFECT_API_URL": api_url},
        start_timeout=_PREFECT_START_TIMEOUT,
    )


def checkout_root() -> Path:
    """The repository checkout that holds ``flows/`` and ``deployments/`` (the worker runs flows there)."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / PREFECT_FILE).is_file() else Path.cwd().resolve()


def prefect_api_url(settings: Settings) -> str:
    """The API URL of the local Prefect server (running or not)."""
    return f"http://{settings.local.host}:{settings.local.prefect_port}/api"


def prefect_env(settings: Settings) -> dict[str, str]:
    """Prefect's home under the local data dir and its telemetry off: for every local Prefect process."""
    return {
        "PREFECT_HOME": str(settings.local.data_dir.resolve() / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    }


def running_prefect_api_url(settings: Settings) -> str | None:
    """The local Prefect server's API URL if `retrain local up --with-prefect` started it and it answers."""
    server = _server(settings)
    pid_file, _ = service_files(settings, server)
    return prefect_api_url(settings) if our_pid(pid_file, server) and healthy(server) else None


def _pool_ready(pool_url: str) -> bool:
    """A worker is polling the pool: the server marks a pool READY after a worker's heartbeat."""
    try:
        with urllib.request.urlopen(pool_url, timeout=2) as response:
            return bool(json.load(response).get("status") == "READY")
    except (OSError, ValueError):
        return False


def deploy(settings: Settings) -> None:
    """Create the process work pool (if missing) and apply every deployment of deployments/prefect.yaml.

    Runs the Prefect CLI against the local server; ``RETRAIN_HOME`` is left out of its
    environment so the pull step stays a template that the worker resolves at run time.
    """
    root = checkout_root()
    env = {**os.environ, **prefect_env(settings), "PREFECT_API_URL": prefect_api_url(settings)}
    env.pop("RETRAIN_HOME", None)
    pool = PREFECT_POOL
    commands = [
        ["work-pool", "create", pool, "--type", "process"],
        ["work-pool", "create", TRAINING_POOL, "--type", "process"],
        ["--no-prompt", "deploy", "--all", "--prefect-file", str(root / PREFECT_FILE)],
    ]
    for args in commands:
        result = subprocess.run(
            [*_PREFECT, *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stdout + result.stderr:
            tail = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(
                f"`prefect {' '.join(args[:3])}` failed against {prefect_api_url(settings)}: {tail[0]}"
            )
    logger.info("deployed %s to the local Prefect server (pool %s)", PREFECT_FILE, pool)
