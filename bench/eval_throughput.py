"""Evaluation throughput and rate-limit pacing against the local OpenAI-compatible server.

Run with ``.venv/bin/python -m bench.eval_throughput`` (needs the dev dependencies).

1. Throughput: the local server (its own process) adds 200 ms to every chat completion; 1,000
   items x 2 models at concurrency 32 through ``run_evaluation`` (cold cache, answers cached
   in a localbucket S3 server, results and summary written) against the ideal
   1,000 x 2 x 0.2 / 32 = 12.5 s. Target: at least 85% efficiency.
2. Pacing: the server enforces a rate limit (a token bucket: requests above the rate get a
   429 with ``Retry-After``, counted in ``/admin/stats``). With the client-side limiter
   (``requests_per_minute``) below it the run must see zero 429s; a control run without the
   client limit shows the server limit does bite.

``python -m bench.eval_throughput serve ...`` is the server process the bench starts: the
local server's app, plus the rate-limit middleware when ``--server-rpm`` is given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from retrain.config.services import ProviderSettings, S3Settings
from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.eval_sets import put_eval_set
from retrain.evaluate.runner import run_evaluation
from retrain.evaluate.targets import ModelTarget
from retrain.local.synthetic import make_eval_set
from retrain.storage.object_store import ObjectStore
from tests.s3_servers import free_port, localbucket_server, wait_for_port

__all__ = ["main"]

MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4.1-nano-2025-04-14")
LATENCY = 0.2
ITEMS = 1_000
CONCURRENCY = 32
SERVER_RPM = 1_200.0
CLIENT_RPM = 1_080.0
PACED_ITEMS = 200
LIMITED = "(429 server rate limit)"


class _ServerRateLimit:
    """Token bucket over chat completions: above ``per_minute`` (burst: one second's worth), a 429."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def allow(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now
            if self.level >= 1.0:
                self.level -= 1.0
                return True
            return False


def _serve(args: argparse.Namespace) -> None:
    import uvicorn
    from fastapi import Request, Response
    from local_openai.app import create_app
    from local_openai.errors import error_response
    from local_openai.faults import FaultConfig

    app = create_app(args.data_dir, faults=FaultConfig(chat_latency_seconds=args.latency))
    if args.server_rpm:
        limit = _ServerRateLimit(args.server_rpm)
        state = app.state.server

        async def rate_limit(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            if request.url.path.endswith("/chat/completions") and not limit.allow():
                state.count_route(f"POST /chat/completions {LIMITED}")
                rejected: Response = error_response(
                    429,
                    "Rate limit reached for requests.",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": "1"},
                )
                return rejected
            return await call_next(request)

        app.middleware("http")(rate_limit)

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


@dataclass
class Server:
    root: str
    pid: int


@contextmanager
def _local_openai(data_dir: Path, server_rpm: float | None = None) -> Iterator[Server]:
    port = free_port()
    command = [sys.executable, "-m", "bench.eval_throughput", "serve", "--data-dir", str(data_dir)]
    command += ["--port", str(port), "--latency", str(LATENCY)]
    command += ["--server-rpm", str(server_rpm)] if server_rpm else []
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=60)
        yield Server(f"http://127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        process.wait(timeout=20)


def _stats(root: str) -> dict[str, Any]:
    response = httpx.get(f"{root}/admin/stats", timeout=10)
    response.raise_for_status()
    return dict(response.json())


def _rejected(stats: dict[str, Any]) -> int:
    return sum(count for route, count in stats["routes"].items() if "(429" in route)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    name: str
    elapsed: float
    answers: int
    rejected_429: int
    completions: int
    errors: int
    mean_latency: float
    client_cpu: float
    server_cpu: float
    load: float


def _evaluate(s3: S3Settings, server: Server, items: int, settings: EvaluationSettings, name: str) -> Run:
    store = ObjectStore.from_settings(s3.model_copy(update={"prefix": f"{name}/"}))
    provider = ProviderSettings(base_url=f"{server.root}/v1", timeout_seconds=60)
    eval_set = put_eval_set(store, "bench", make_eval_set(items, seed=len(name)))
    targets = [ModelTarget(label, model, provider) for label, model in zip(("a", "b"), MODELS, strict=True)]
    before, client_before, server_before = _stats(server.root), time.process_time(), _cpu_seconds(server.pid)
    started = time.perf_counter()
    report = run_evaluation(store, targets, eval_set, settings, run_id=f"bench-{name}")
    elapsed = time.perf_counter() - started
    after, client_after, server_after = _stats(server.root), time.process_time(), _cpu_seconds(server.pid)
    done = sum(after["chat_completions_by_model"].values()) - sum(
        before["chat_completions_by_model"].values()
    )
    answered = [r for results in report.results.values() for r in results if not r.cached]
    return Run(
        name=name,
        elapsed=elapsed,
        answers=sum(len(results) for results in report.results.values()),
        rejected_429=_rejected(after) - _rejected(before),
        completions=done,
        errors=sum(scores.errors for scores in report.models.values()),
        mean_latency=statistics.mean(r.latency_s for r in answered) if answered else 0.0,
        client_cpu=client_after - client_before,
        server_cpu=server_after - server_before,
        load=os.getloadavg()[0],
    )


def _throughput(s3: S3Settings, work: Path) -> Run:
    settings = EvaluationSettings(concurrency=CONCURRENCY, max_retries=2, item_timeout_seconds=60)
    with _local_openai(work / "openai-throughput") as server:
        _evaluate(s3, server, 40, settings, "warmup")
        return _evaluate(s3, server, ITEMS, settings, "throughput")


def _pacing(s3: S3Settings, work: Path) -> tuple[Run, Run]:
    paced = EvaluationSettings(
        concurrency=CONCURRENCY,
        requests_per_minute=CLIENT_RPM,
        max_retries=8,
        item_timeout_seconds=60,
        max_error_rate=1.0,
    )
    unpaced = paced.model_copy(update={"requests_per_minute": None})
    with _local_openai(work / "openai-pacing", server_rpm=SERVER_RPM) as server:
        limited = _evaluate(s3, server, PACED_ITEMS, paced, "paced")
        time.sleep(2)
        control = _evaluate(s3, server, PACED_ITEMS, unpaced, "unpaced")
    return limited, control


def _describe(run: Run) -> str:
    return (
        f"{run.answers} answers ({run.completions} completions, {run.errors} errors, "
        f"{run.rejected_429} responses 429) in {run.elapsed:.2f} s; mean request latency "
        f"{run.mean_latency * 1000:.0f} ms; CPU: client {run.client_cpu:.1f} s, "
        f"server {run.server_cpu:.1f} s; "
        f"load average {run.load:.1f} on {os.cpu_count()} cores"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.eval_throughput", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="(internal) the local server process, optionally rate limited")
    serve.add_argument("--data-dir", type=Path, required=True)
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--latency", type=float, default=LATENCY)
    serve.add_argument("--server-rpm", type=float, default=None)
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args)
        return

    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp, localbucket_server(Path(tmp) / "s3") as s3:
        run = _throughput(s3, Path(tmp))
        ideal = ITEMS * len(MODELS) * LATENCY / CONCURRENCY
        print(f"throughput: {_describe(run)}")
        print(
            f"  ideal {ideal:.2f} s; efficiency {ideal / run.elapsed:.1%}; "
            f"{run.answers / run.elapsed:.1f} answers/s"
        )
        limited, control = _pacing(s3, Path(tmp))
        floor = PACED_ITEMS * len(MODELS) / (CLIENT_RPM / 60)
        print(f"paced (client {CLIENT_RPM:g}/min, server {SERVER_RPM:g}/min): {_describe(limited)}")
        print(f"  paced minimum {floor:.1f} s")
        print(f"control (no client limit, server {SERVER_RPM:g}/min): {_describe(control)}")


if __name__ == "__main__":
    main()
