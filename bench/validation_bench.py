"""Validation throughput: full `validate_batch` against its floor and a cookbook-style check.

    .venv/bin/python -m bench.validation_bench --examples 100000 [--bad-rate 0.03]

Generates realistic chat JSONL (system + 1-3 user/assistant exchanges, ~300 tokens, a few % bad
lines) into a temporary file, then times:

* full:     ``validate_batch`` streaming the file (format, tokens, content checks, GX in chunks),
            keeping no examples in memory (the ``retrain validate`` path);
* floor:    orjson parse + ``encode_ordinary`` of every message, nothing else;
* cookbook: stdlib ``json`` + per-message ``encode`` in plain Python, as in OpenAI's data-prep
            notebook.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from retrain.settings import ValidationSettings
from retrain.tokens import get_encoding
from retrain.validation import QuarantinedLine, validate_batch

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


def run_full(path: Path) -> tuple[float, dict[str, object]]:
    quarantined = 0

    def sink(_: QuarantinedLine) -> None:
        nonlocal quarantined
        quarantined += 1

    settings = ValidationSettings(max_quarantine_rate=0.2)
    start = time.perf_counter()
    result = validate_batch(
        [(str(path), _chunks(path))],
        settings,
        base_model="gpt-4o-mini-2024-07-18",
        keep_examples=False,
        quarantine_sink=sink,
    )
    elapsed = time.perf_counter() - start
    return elapsed, {
        "lines": result.lines_read,
        "accepted": result.n_accepted,
        "quarantined": quarantined,
        "mean_tokens": result.token_stats.get("mean"),
        "passed": result.passed,
    }


def run_floor(path: Path) -> float:
    encoding = get_encoding("o200k_base")
    start = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                for message in value.get("messages", []):
                    encoding.encode_ordinary(message.get("content") or "")
    return time.perf_counter() - start


def run_cookbook(path: Path) -> float:
    encoding = get_encoding("o200k_base")
    start = time.perf_counter()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(value, dict):
                continue
            total = 3
            for message in value.get("messages", []):
                total += 3
                for key, field in message.items():
                    if isinstance(field, str):
                        total += len(encoding.encode(field))
                    if key == "name":
                        total += 1
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--bad-rate", type=float, default=0.03)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.jsonl"
        generate(path, args.examples, args.bad_rate)
        size_mb = path.stat().st_size / 1e6
        print(f"{args.examples:,} examples, {size_mb:.0f} MB, bad rate {args.bad_rate:.0%}")
        floor = run_floor(path)
        cookbook = run_cookbook(path)
        full, details = run_full(path)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for name, seconds in (("floor", floor), ("cookbook", cookbook), ("full", full)):
            print(f"{name:9s} {seconds:7.1f} s  {args.examples / seconds:9,.0f} examples/s")
        print(f"full details: {details}; peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
