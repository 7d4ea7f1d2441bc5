"""Validation throughput: full `validate_batch` against its floor and the cookbook's checks.

    .venv/bin/python -m bench.validation_bench --examples 100000 [--bad-rate 0.03] [--threaded]

Generates realistic chat JSONL (system + 1-3 user/assistant exchanges, ~275 tokens, a few % bad
lines) into a temporary file, then times, in this one process, on that same file:

* floor:    orjson parse + ``encode_ordinary`` of every message's content, nothing else;
* cookbook: OpenAI's data-prep notebook (``Chat_finetuning_data_prep.ipynb``) as written: stdlib
            ``json``, its format-error checks, ``num_tokens_from_messages`` and
            ``num_assistant_tokens_from_messages`` with ``encoding.encode``, its warning counts
            (streamed line by line instead of loading the whole file first);
* full:     ``validate_batch`` as ``retrain validate`` runs it (no examples kept, quarantine to a
            sink), with 120 eval prompts and 10,000 curated hashes to check against, once per
            ``--workers`` value (1 = in-process; 0 = one worker process per CPU, forked, since
            this process runs no other thread), and with ``--threaded`` once more with 0 beside
            an idle thread, as in a flow run, where the workers are spawned.

One-off set-up (importing great_expectations, loading the o200k_base vocabulary) is done and
timed first, so no variant pays it. CPU seconds include worker processes (they are reaped
before the figure is read). Peak memory of a full run is sampled every 50 ms from /proc by a
separate process (a sampler thread would make the validation fall back to spawned workers):
the RSS of this process plus all its worker processes together (an upper bound: forked
workers share pages with this process, and each RSS counts them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from retrain.config.stage_settings import ValidationSettings
from retrain.validate.batch import validate_batch
from retrain.validate.batch_result import QuarantinedLine
from retrain.validate.canonical import normalise_prompt
from retrain.validate.tokens import get_encoding

__all__ = ["main"]

_WORDS = [
    "the",
    "order",
    "account",
    "refund",
    "shipping",
    "invoice",
    "customer",
    "support",
    "password",
    "reset",
    "delivery",
    "status",
    "tracking",
    "number",
    "warranty",
    "replacement",
    "subscription",
    "billing",
    "address",
    "payment",
    "card",
    "update",
    "cancel",
    "please",
    "thanks",
    "could",
    "would",
    "should",
    "because",
    "however",
    "therefore",
    "available",
    "today",
    "tomorrow",
    "week",
]
_BAD = [b"{not json", b"[1, 2]", b'{"messages": []}', b'{"messages": [{"role": "user", "content": "q"}]}']


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def generate(path: Path, n: int, bad_rate: float, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("wb") as out:
        for index in range(n):
            if rng.random() < bad_rate:
                out.write(rng.choice(_BAD) + b"\n")
                continue
            messages = [{"role": "system", "content": "You are the support assistant of Acme. Be precise."}]
            for _ in range(rng.randint(1, 3)):
                messages.append(
                    {"role": "user", "content": f"#{index} " + _sentence(rng, rng.randint(25, 55))}
                )
                messages.append({"role": "assistant", "content": _sentence(rng, rng.randint(50, 100))})
            out.write(orjson.dumps({"messages": messages}) + b"\n")


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


# Runs in its own process, so the validation under test sees no extra thread: prints the peak
# memory of process ROOT plus all its other children, sampled every 50 ms until stdin closes.
# RSS counts the pages forked workers share with their parent once per process: an upper bound.
_SAMPLER = """
import os, select, sys
from pathlib import Path
root, me = int(sys.argv[1]), os.getpid()
page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
def mb(pid):
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page_mb
    except (OSError, ValueError, IndexError):
        return 0.0
def children():
    found = []
    for task in Path(f"/proc/{root}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split() if int(c) != me]
        except (OSError, ValueError):
            pass
    return found
peak = peak_workers = 0.0
while not select.select([sys.stdin], [], [], 0.05)[0]:
    workers = sum(mb(child) for child in children())
    peak_workers, peak = max(peak_workers, workers), max(peak, mb(root) + workers)
print(round(peak), round(peak_workers))
"""


class _PeakMemory:
    """Peak RSS of this process plus its worker processes, from a sampler process (Linux /proc)."""

    def __init__(self) -> None:
        self.peak = self.peak_workers = 0

    def __enter__(self) -> _PeakMemory:
        self._sampler = subprocess.Popen(
            [sys.executable, "-S", "-c", _SAMPLER, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self._sampler.communicate("stop\n")
        self.peak, self.peak_workers = (int(value) for value in out.split())


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def _another_thread(alive: bool) -> Iterator[None]:
    """With ``alive``, an idle thread runs meanwhile, as in a flow run: workers are then spawned."""
    if not alive:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_full(path: Path, workers: int, *, threaded: bool = False) -> dict[str, Any]:
    quarantined = 0

    def sink(_: QuarantinedLine) -> None:
        nonlocal quarantined
        quarantined += 1

    prompts = {normalise_prompt([{"role": "user", "content": f"eval question {i}"}]) for i in range(120)}
    curated = {hashlib.sha256(f"curated {i}".encode()).hexdigest() for i in range(10_000)}
    settings = ValidationSettings(max_quarantine_rate=0.2, workers=workers)
    start, cpu = time.perf_counter(), _cpu()
    with _PeakMemory() as memory, _another_thread(threaded):
        result = validate_batch(
            [(str(path), _chunks(path))],
            settings,
            base_model="gpt-4o-mini-2024-07-18",
            known_hashes=curated,
            eval_prompts=prompts,
            keep_examples=False,
            quarantine_sink=sink,
        )
    return {
        "seconds": time.perf_counter() - start,
        "cpu": _cpu() - cpu,
        "peak_rss_mb": memory.peak,
        "peak_workers_rss_mb": memory.peak_workers,
        "lines": result.lines_read,
        "accepted": result.n_accepted,
        "quarantined": quarantined,
        "by_reason": result.by_reason,
        "mean_tokens": result.token_stats.get("mean"),
        "passed": result.passed,
    }


def run_floor(path: Path) -> dict[str, Any]:
    encoding = get_encoding("o200k_base")
    start, cpu = time.perf_counter(), _cpu()
    with path.open("rb") as handle:
        for line in handle:
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                for message in value.get("messages", []):
                    encoding.encode_ordinary(message.get("content") or "")
    return {"seconds": time.perf_counter() - start, "cpu": _cpu() - cpu}


def _cookbook_format_errors(ex: Any, format_errors: dict[str, int]) -> bool:
    """The notebook's "Format validation" cell for one example; True if it found an error."""
    before = sum(format_errors.values())
    if not isinstance(ex, dict):
        format_errors["data_type"] += 1
        return True
    messages = ex.get("messages", None)
    if not messages:
        format_errors["missing_messages_list"] += 1
        return True
    for message in messages:
        if "role" not in message or "content" not in message:
            format_errors["message_missing_key"] += 1
        if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
            format_errors["message_unrecognized_key"] += 1
        if message.get("role", None) not in ("system", "user", "assistant", "function"):
            format_errors["unrecognized_role"] += 1
        content = message.get("content", None)
        function_call = message.get("function_call", None)
        if (not content and not function_call) or not isinstance(content, str):
            format_errors["missing_content"] += 1
    if not any(message.get("role", None) == "assistant" for message in messages):
        format_errors["example_missing_assistant_message"] += 1
    return sum(format_errors.values()) > before


def run_cookbook(path: Path) -> dict[str, Any]:
    encoding = get_encoding("o200k_base")

    def num_tokens_from_messages(
        messages: list[dict[str, Any]], tokens_per_message: int = 3, tokens_per_name: int = 1
    ) -> int:
        num_tokens = 0
        for message in messages:
            num_tokens += tokens_per_message
            for key, value in message.items():
                num_tokens += len(encoding.encode(value))
                if key == "name":
                    num_tokens += tokens_per_name
        num_tokens += 3
        return num_tokens

    def num_assistant_tokens_from_messages(messages: list[dict[str, Any]]) -> int:
        num_tokens = 0
        for message in messages:
            if message["role"] == "assistant":
                num_tokens += len(encoding.encode(message["content"]))
        return num_tokens

    start, cpu = time.perf_counter(), _cpu()
    format_errors: dict[str, int] = defaultdict(int)
    n_missing_system = n_missing_user = 0
    n_messages, convo_lens, assistant_message_lens = [], [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                ex = json.loads(line)
            except json.JSONDecodeError:
                format_errors["not_json"] += 1
                continue
            if _cookbook_format_errors(ex, format_errors):
                continue
            messages = ex["messages"]
            if not any(message["role"] == "system" for message in messages):
                n_missing_system += 1
            if not any(message["role"] == "user" for message in messages):
                n_missing_user += 1
            n_messages.append(len(messages))
            convo_lens.append(num_tokens_from_messages(messages))
            assistant_message_lens.append(num_assistant_tokens_from_messages(messages))
    n_too_long = sum(length > 65_536 for length in convo_lens)
    return {
        "seconds": time.perf_counter() - start,
        "cpu": _cpu() - cpu,
        "format_errors": dict(format_errors),
        "examples": len(convo_lens),
        "too_long": n_too_long,
    }


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model or platform.processor()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--bad-rate", type=float, default=0.03)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 0], help="full-run variants: 1 in-process, 0 auto"
    )
    parser.add_argument(
        "--threaded",
        action="store_true",
        help="also run workers=0 beside another thread, as a flow run does (workers spawned, not forked)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    import great_expectations  # noqa: F401  (one-off, as a long-lived worker pays it once)

    imported = time.perf_counter()
    get_encoding("o200k_base")
    loaded = time.perf_counter()
    print(f"machine: {_machine()}")
    print(
        f"one-off: import great_expectations {imported - start:.1f} s, o200k_base {loaded - imported:.1f} s"
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.jsonl"
        generate(path, args.examples, args.bad_rate)
        size_mb = path.stat().st_size / 1e6
        print(f"{args.examples:,} examples, {size_mb:.0f} MB, bad rate {args.bad_rate:.0%}")
        runs: list[tuple[str, dict[str, Any]]] = [
            ("floor", run_floor(path)),
            ("cookbook", run_cookbook(path)),
        ]
        for workers in args.workers:
            runs.append((f"full, workers={workers}", run_full(path, workers)))
        if args.threaded:
            runs.append(("full, 0, threaded", run_full(path, 0, threaded=True)))
        floor = runs[0][1]["seconds"]
        cookbook = runs[1][1]["seconds"]
        for name, run in runs:
            seconds = run["seconds"]
            print(
                f"{name:18s} {seconds:7.1f} s  cpu {run['cpu']:7.1f} s  "
                f"{args.examples / seconds:9,.0f} examples/s  {seconds / floor:4.2f}x floor  "
                f"cookbook/this {cookbook / seconds:4.2f}x"
            )
        for name, run in runs:
            details = {k: v for k, v in run.items() if k not in ("seconds", "cpu")}
            if details:
                print(f"{name} details: {details}")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process over all runs: {own:,.0f} MB; {_machine()}")


if __name__ == "__main__":
    main()
