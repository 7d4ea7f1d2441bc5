"""The embedded local stack: a local S3 server, the local OpenAI-compatible server and,
with ``with_prefect``, a Prefect server and a process worker.

``up`` starts each service as a background process in its own session (pid file under
``<data_dir>/run``, log under ``<data_dir>/logs``), waits until it answers and creates the
configured bucket; ``down`` stops the process groups it started; ``status`` reports what
runs. The Prefect server keeps its SQLite database under ``<data_dir>/prefect`` (its
``PREFECT_HOME``), with telemetry off. Before its worker starts, ``up`` creates the process
work pool and deploys ``deployments/prefect.yaml``, so the nightly deployment can run at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from retrain.config.services import S3Settings
from retrain.config.settings import Settings
from retrain.exceptions import ConfigError, ProviderUnavailable, RetrainError, StorageUnavailable
from retrain.storage.object_store import ObjectStore

__all__ = [
    "PREFECT_FILE",
    "PREFECT_POOL",
    "ServiceStatus",
    "StackStatus",
    "checkout_root",
    "deploy",
    "down",
    "local_s3_settings",
    "prefect_api_url",
    "prefect_env",
    "running_prefect_api_url",
    "settings_off_the_stack",
    "status",
    "up",
]

logger = logging.getLogger(__name__)

_START_TIMEOUT = 60.0
_PREFECT_START_TIMEOUT = 180.0
_STOP_TIMEOUT = 15.0
_PREFECT_SERVICES = ("prefect", "worker")
PREFECT_FILE = Path("deployments") / "prefect.yaml"
PREFECT_POOL = "retrain-process"


@dataclass(frozen=True)
class _Service:
    name: str
    port: int
    url: str
    health_url: str
    command: list[str]
    marker: str
    error: type[RetrainError]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None
    start_timeout: float = _START_TIMEOUT


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str
    running: bool
    pid: int | None
    log: Path


@dataclass(frozen=True)
class StackStatus:
    services: list[ServiceStatus]
    env: dict[str, str]
    already_running: bool = False

    @property
    def running(self) -> bool:
        return all(service.running for service in self.services)


def _services(settings: Settings, with_prefect: bool = False) -> list[_Service]:
    local = settings.local
    data = local.data_dir.resolve()
    s3_url = f"http://{local.host}:{local.s3_port}"
    openai_root = f"http://{local.host}:{local.openai_port}"
    services = [
        _Service(
            "s3",
            local.s3_port,
            s3_url,
            f"{s3_url}/",
            [
                sys.executable,
                "-m",
                "localbucket",
                str(data / "s3"),
                "--host",
                local.host,
                "--port",
                str(local.s3_port),
            ],
            "localbucket",
            StorageUnavailable,
        ),
        _Service(
            "openai",
            local.openai_port,
            f"{openai_root}/v1",
            f"{openai_root}/health",
            [
                sys.executable,
                "-m",
                "local_openai",
                "--data-dir",
                str(data / "openai"),
                "--host",
                local.host,
                "--port",
                str(local.openai_port),
                "--step-delay",
                str(local.openai_step_delay),
            ],
            "local_openai",
            ProviderUnavailable,
        ),
    ]
    return services + _prefect_services(settings) if with_prefect else services


def _prefect_services(settings: Settings) -> list[_Service]:
    local = settings.local
    api_url = prefect_api_url(settings)
    pool_url = f"{api_url}/work_pools/{PREFECT_POOL}"
    prefect = [sys.executable, "-m", "prefect"]
    worker_env = {
        **_env(settings),
        **prefect_env(settings),
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "RETRAIN_HOME": str(checkout_root()),
        "RETRAIN_LOCAL__DATA_DIR": str(local.data_dir.resolve()),
    }
    return [
        _Service(
            "prefect",
            local.prefect_port,
            api_url.removesuffix("/api"),
            f"{api_url}/health",
            [*prefect, "server", "start", "--host", local.host, "--port", str(local.prefect_port)],
            "prefect",
            RetrainError,
            env={**prefect_env(settings), "PREFECT_API_URL": api_url},
            start_timeout=_PREFECT_START_TIMEOUT,
        ),
        _Service(
            "worker",
            0,
            f"pool {PREFECT_POOL}",
            pool_url,
            [*prefect, "worker", "start", "--pool", PREFECT_POOL, "--type", "process"],
            "prefect",
            RetrainError,
            env=worker_env,
            ready=lambda: _pool_ready(pool_url),
            start_timeout=_PREFECT_START_TIMEOUT,
        ),
    ]


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
    [server, _] = _prefect_services(settings)
    pid_file, _ = _paths(settings, server)
    return prefect_api_url(settings) if _our_pid(pid_file, server) and _healthy(server) else None


def _pool_ready(pool_url: str) -> bool:
    """A worker is polling the pool: the server marks a pool READY after a worker's heartbeat."""
    try:
        with urllib.request.urlopen(pool_url, timeout=2) as response:
            return bool(json.load(response).get("status") == "READY")
    except (OSError, ValueError):
        return False


def settings_off_the_stack(settings: Settings) -> list[str]:
    """The settings that point retrain somewhere other than the local stack (empty if none do)."""
    local = _env(settings)
    off = []
    if settings.s3.endpoint_url != local["RETRAIN_S3__ENDPOINT_URL"]:
        off.append(f"RETRAIN_S3__ENDPOINT_URL={settings.s3.endpoint_url or '(AWS)'}")
    if settings.provider.kind != "compatible":
        off.append(f"RETRAIN_PROVIDER__KIND={settings.provider.kind}")
    elif settings.provider.base_url != local["RETRAIN_PROVIDER__BASE_URL"]:
        off.append(f"RETRAIN_PROVIDER__BASE_URL={settings.provider.base_url}")
    return off


def local_s3_settings(settings: Settings) -> S3Settings:
    """The S3 settings with the endpoint moved to the local S3 server."""
    return settings.s3.model_copy(
        update={"endpoint_url": f"http://{settings.local.host}:{settings.local.s3_port}"}
    )


def _env(settings: Settings) -> dict[str, str]:
    local = settings.local
    return {
        "RETRAIN_S3__ENDPOINT_URL": f"http://{local.host}:{local.s3_port}",
        "RETRAIN_S3__BUCKET": settings.s3.bucket,
        "RETRAIN_PROVIDER__KIND": "compatible",
        "RETRAIN_PROVIDER__BASE_URL": f"http://{local.host}:{local.openai_port}/v1",
        "RETRAIN_LOCAL__DATA_DIR": str(local.data_dir),
    }


def _paths(settings: Settings, service: _Service) -> tuple[Path, Path]:
    data = settings.local.data_dir
    return data / "run" / f"{service.name}.pid", data / "logs" / f"{service.name}.log"


def _our_pid(pid_file: Path, service: _Service) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is our service (not a reused pid)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if service.marker.encode() in cmdline else None


def _healthy(service: _Service) -> bool:
    if service.ready is not None:
        return service.ready()
    try:
        with urllib.request.urlopen(service.health_url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def _start(settings: Settings, service: _Service) -> int:
    pid_file, log_file = _paths(settings, service)
    if service.port and _port_taken(settings.local.host, service.port):
        raise ConfigError(
            f"port {service.port} on {settings.local.host} is taken by another process; stop it or choose "
            f"another port (RETRAIN_LOCAL__{service.name.upper()}_PORT)"
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            service.command,
            env={**os.environ, **service.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + service.start_timeout
    while not _healthy(service):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(settings, service)
            raise service.error(f"the local {service.name} server did not start; see {log_file}")
        time.sleep(0.2)
    logger.info("started local %s server (pid %d) at %s", service.name, process.pid, service.url)
    return process.pid


def _stop(settings: Settings, service: _Service) -> None:
    pid_file, _ = _paths(settings, service)
    pid = _our_pid(pid_file, service)
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _our_pid(pid_file, service) is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _our_pid(pid_file, service) is not None:
            _signal_group(pid, signal.SIGKILL)
            _reap(pid)
        if service.port:
            _wait_until_port_free(settings.local.host, service.port, time.monotonic() + 5.0)
        logger.info("stopped local %s server (pid %d)", service.name, pid)
    pid_file.unlink(missing_ok=True)


def _wait_until_port_free(host: str, port: int, deadline: float) -> None:
    """Wait for the port of a stopped service to close, so an `up` right after can bind it.

    A process that is exiting already reads as gone in /proc (its command line is released
    first) while its listening socket is still open, for a moment.
    """
    while _port_taken(host, port) and time.monotonic() < deadline:
        time.sleep(0.05)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the service and its children (the Prefect server and worker start subprocesses).

    Every service is started in a session of its own, so its process group id is its pid.
    """
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child (it is when started by this process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _started(settings: Settings, service: _Service) -> bool:
    pid_file, _ = _paths(settings, service)
    return pid_file.exists()


def status(settings: Settings, with_prefect: bool = False) -> StackStatus:
    """What runs now, with the environment variables that point retrain at it.

    The Prefect server and worker are listed when asked for or when `up` started them.
    """
    services = []
    for service in _services(settings, with_prefect=True):
        if service.name in _PREFECT_SERVICES and not (with_prefect or _started(settings, service)):
            continue
        pid_file, log_file = _paths(settings, service)
        pid = _our_pid(pid_file, service)
        services.append(
            ServiceStatus(service.name, service.url, pid is not None and _healthy(service), pid, log_file)
        )
    env = _env(settings)
    if any(service.name == "prefect" for service in services):
        env["PREFECT_API_URL"] = prefect_api_url(settings)
    return StackStatus(services, env)


def up(settings: Settings, with_prefect: bool = False) -> StackStatus:
    """Start whatever is not running yet, create the bucket and return the status (idempotent).

    With ``with_prefect``, also the Prefect server; then the work pool is created, the
    deployments of ``deployments/prefect.yaml`` are applied and a process worker starts.
    """
    started = False
    for service in _services(settings, with_prefect=with_prefect):
        pid_file, _ = _paths(settings, service)
        if _our_pid(pid_file, service) is not None and _healthy(service):
            continue
        pid_file.unlink(missing_ok=True)
        if service.name == "worker":
            deploy(settings)
        _start(settings, service)
        started = True
    ObjectStore.from_settings(local_s3_settings(settings)).ensure_bucket()
    current = status(settings, with_prefect=with_prefect)
    return StackStatus(current.services, current.env, already_running=not started)


def down(settings: Settings) -> None:
    """Stop the services this stack started (by their pid files); others are left alone."""
    for service in reversed(_services(settings, with_prefect=True)):
        _stop(settings, service)


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
        ["--no-prompt", "deploy", "--all", "--prefect-file", str(root / PREFECT_FILE)],
    ]
    for args in commands:
        result = subprocess.run(
            [sys.executable, "-m", "prefect", *args],
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
