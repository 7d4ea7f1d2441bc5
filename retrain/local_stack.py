"""The embedded local stack: a local S3 server and the local OpenAI-compatible server.

``up`` starts each service as a background process (pid file under ``<data_dir>/run``, log
under ``<data_dir>/logs``), waits until it answers and creates the configured bucket;
``down`` stops the processes it started; ``status`` reports what runs. A later
``--with-prefect`` adds a third entry to ``_services`` (the Prefect server on
``prefect_port``); nothing else here depends on how many services there are.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from retrain.exceptions import ConfigError, ProviderUnavailable, RetrainError, StorageUnavailable
from retrain.settings import S3Settings, Settings
from retrain.storage import ObjectStore

__all__ = ["ServiceStatus", "StackStatus", "down", "local_s3_settings", "status", "up"]

logger = logging.getLogger(__name__)

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class _Service:
    name: str
    port: int
    url: str
    health_url: str
    command: list[str]
    marker: str
    error: type[RetrainError]


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


def _services(settings: Settings) -> list[_Service]:
    local = settings.local
    data = local.data_dir.resolve()
    s3_url = f"http://{local.host}:{local.s3_port}"
    openai_root = f"http://{local.host}:{local.openai_port}"
    return [
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
    if _port_taken(settings.local.host, service.port):
        raise ConfigError(
            f"port {service.port} on {settings.local.host} is taken by another process; stop it or choose "
            f"another port (RETRAIN_LOCAL__{service.name.upper()}_PORT)"
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            service.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + _START_TIMEOUT
    while not _healthy(service):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(settings, service)
            raise service.error(f"the local {service.name} server did not start; see {log_file}")
        time.sleep(0.1)
    logger.info("started local %s server (pid %d) at %s", service.name, process.pid, service.url)
    return process.pid


def _stop(settings: Settings, service: _Service) -> None:
    pid_file, _ = _paths(settings, service)
    pid = _our_pid(pid_file, service)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _our_pid(pid_file, service) is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _our_pid(pid_file, service) is not None:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        logger.info("stopped local %s server (pid %d)", service.name, pid)
    pid_file.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child (it is when started by this process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def status(settings: Settings) -> StackStatus:
    """What runs now, with the environment variables that point retrain at it."""
    services = []
    for service in _services(settings):
        pid_file, log_file = _paths(settings, service)
        pid = _our_pid(pid_file, service)
        services.append(
            ServiceStatus(service.name, service.url, pid is not None and _healthy(service), pid, log_file)
        )
    return StackStatus(services, _env(settings))


def up(settings: Settings) -> StackStatus:
    """Start whatever is not running yet, create the bucket and return the status (idempotent)."""
    started = False
    for service in _services(settings):
        pid_file, _ = _paths(settings, service)
        if _our_pid(pid_file, service) is not None and _healthy(service):
            continue
        pid_file.unlink(missing_ok=True)
        _start(settings, service)
        started = True
    ObjectStore.from_settings(local_s3_settings(settings)).ensure_bucket()
    current = status(settings)
    return StackStatus(current.services, current.env, already_running=not started)


def down(settings: Settings) -> None:
    """Stop the services this stack started (by their pid files); others are left alone."""
    for service in reversed(_services(settings)):
        _stop(settings, service)
