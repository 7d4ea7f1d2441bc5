"""A real HTTP server on a free 127.0.0.1 port that records the JSON bodies POSTed to it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["arrives_within", "webhook_receiver"]


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield (url, received bodies); the list fills as requests arrive."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook/T000/B000/secret-token", received
    finally:
        server.shutdown()
        server.server_close()


def arrives_within(seconds: float, arrived: Callable[[], bool]) -> bool:
    """Wait until ``arrived()`` holds or ``seconds`` have passed; whether it holds."""
    deadline = time.monotonic() + seconds
    while not arrived():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
