"""The local stack's services as background processes: started in a session of their own, found
again by their pid files, asked whether they answer, and stopped with their children.

Each service has a pid file under ``<data_dir>/run`` and a log under ``<data_dir>/logs``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from retrain.config.settings import Settings
from retrain.exceptions import ConfigError, RetrainError

__all__ = [
    "Service",
    "healthy",
    "our_pid",
    "service_files",
    "service_started",
    "start",
    "stop",
]

logger = logging.getLogger(__name__)

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Service:
    """One local server: how to start it, where it answers, and how to tell it is ours.

    ``marker`` is a word of its command line (a reused pid is not ours); ``ready``, when set,
    replaces the health check (a worker has no port of its own).
    """

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


def service_files(settings: Settings, service: Service) -> tuple[Path, Path]:
    """The service's pid file and log file under the local data dir."""
    data = settings.local.data_dir
    return data / "run" / f"{service.name}.pid", data / "logs" / f"{service.name}.log"


def our_pid(pid_file: Path, service: Service) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is our service (not a reused pid)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if service.marker.encode() in cmdline else None


def healthy(service: Service) -> bool:
    """Whether the service answers (any HTTP status counts), or is ready by its own check."""
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


def start(settings: Settings, service: Service) -> int:
    """Start the service in a session of its own and wait until it answers; return its pid."""
    pid_file, log_file = service_files(settings, service)
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
    while not healthy(service):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(settings, service)
            raise service.error(f"the local {service.name} server did not start; see {log_file}")
        time.sleep(0.2)
    logger.info("started local %s server (pid %d) at %s", service.name, process.pid, service.url)
    return process.pid


def stop(settings: Settings, service: Service) -> None:
    """Stop the service's process group if its pid file names our process, then drop the pid file."""
    pid_file, _ = service_files(settings, service)
    pid = our_pid(pid_file, service)
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while our_pid(pid_file, service) is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if our_pid(pid_file, service) is not None:
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


def service_started(settings: Settings, service: Service) -> bool:
    """Whether ``up`` started the service (its pid file is there, alive or not)."""
    pid_file, _ = service_files(settings, service)
    return pid_file.exists()
