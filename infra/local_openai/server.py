"""Running the server in a background thread (tests, demos): ``with serve_in_thread(dir) as server``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from local_openai.app import create_app

__all__ = ["ServerHandle", "serve_app", "serve_in_thread"]


@dataclass
class ServerHandle:
    host: str
    port: int
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@contextmanager
def serve_app(
    app: Any, *, name: str, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0
) -> Iterator[ServerHandle]:
    """Run the ASGI ``app`` with uvicorn on ``host:port`` (0 = a free port) in a thread; yield once
    it accepts requests, stop it on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"{name} did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    handle = ServerHandle(host, int(bound), server, thread)
    try:
        yield handle
    finally:
        handle.stop()


@contextmanager
def serve_in_thread(
    data_dir: Path, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0, **options: Any
) -> Iterator[ServerHandle]:
    """The local OpenAI server on ``host:port`` in a thread (``serve_app``).

    ``options`` go to ``create_app`` (step_delay, faults, org, seed, api_key).
    """
    app = create_app(data_dir, **options)
    with serve_app(
        app, name="local OpenAI server", host=host, port=port, startup_timeout=startup_timeout
    ) as handle:
        yield handle
