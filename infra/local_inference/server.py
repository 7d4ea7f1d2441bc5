"""Running the inference server in a background thread (tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local_openai.server import ServerHandle, serve_app

from local_inference.app import create_app
from local_inference.engine import Engine

__all__ = ["serve_in_thread"]


@contextmanager
def serve_in_thread(
    engine: Engine, cache_dir: Path, *, port: int = 0, **options: Any
) -> Iterator[ServerHandle]:
    """``engine`` served on 127.0.0.1:``port`` (0 = a free port); ``options`` go to ``create_app``."""
    with serve_app(
        create_app(engine, cache_dir=cache_dir, **options), name="local inference server", port=port
    ) as handle:
        yield handle
