"""Real S3 endpoints for tests: moto's threaded server and a localbucket subprocess.

Each starter yields an ``S3Settings`` pointing at a fresh bucket on a free port.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from retrain.config.services import S3Settings
from retrain.storage.object_store import ObjectStore

__all__ = ["free_port", "localbucket_server", "moto_server", "next_second", "wait_for_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def next_second() -> None:
    """Sleep into the next whole second of the clock, and 50 ms past it.

    S3 keeps LastModified to the second (moto and localbucket cut the fraction off, localbucket
    from the file's mtime, which may lag the clock by a few ms): an object written after this
    has a later LastModified than every object written before it. It waits 0.55 s on average,
    where a fixed `time.sleep(1.1)` did the same.
    """
    now = time.time()
    time.sleep(int(now) + 1.05 - now)


def _settings(port: int) -> S3Settings:
    return S3Settings(
        endpoint_url=f"http://127.0.0.1:{port}",
        bucket=f"test-{uuid.uuid4().hex[:10]}",
        access_key_id=SecretStr("testing"),
        secret_access_key=SecretStr("testing"),
    )


def _threaded_moto_server(port: int) -> Any:
    """moto's ThreadedMotoServer, its request routing memoized.

    moto finds the service a request is for from its host (or the service its signature names)
    by listing its own package folders, twice a request, in the test's process, under the GIL:
    600 S3 calls took 6.1 s of CPU here, 5.35 s with the answer kept. For one host the answer
    never changes, so this server keeps it; everything else, the S3 emulation included, is moto's.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self.backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            if host not in self.backends:  # moto calls this holding its lock
                self.backends[host] = super().get_backend_for_host(host)
            return self.backends[host]

    class Server(ThreadedMotoServer):
        def _server_entry(self) -> None:
            self._server = make_server(
                self._ip_address, self._port, Dispatcher(), True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return Server(ip_address="127.0.0.1", port=port, verbose=False)


@contextmanager
def moto_server() -> Iterator[S3Settings]:
    """moto's threaded server on a free port, with a fresh bucket."""
    port = free_port()
    server = _threaded_moto_server(port)
    server.start()
    try:
        settings = _settings(port)
        ObjectStore.from_settings(settings).ensure_bucket()
        yield settings
    finally:
        server.stop()


@contextmanager
def localbucket_server(data_dir: Path) -> Iterator[S3Settings]:
    """The localbucket server (the embedded default) as a subprocess, with a fresh bucket."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local_s3", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        settings = _settings(port)
        ObjectStore.from_settings(settings).ensure_bucket()
        yield settings
    finally:
        process.terminate()
        process.wait(timeout=10)
