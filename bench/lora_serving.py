"""Evaluation throughput of the CPU inference server (``infra/local_inference``): batched against
one request at a time. Target: batching answers at least 4x faster.

Run with ``.venv/bin/python -m bench.lora_serving [--questions 32] [--max-tokens 16]`` (needs the
training extra: ``make training``). SmolLM2-135M-Instruct (the built-in GGUF, fp32 on the CPU)
answers the held-out questions of the lora demo's facts through the openai SDK: first one request
after another, then all at once from as many threads (the server gathers them into batches).
Greedy, the same prompts and ``max_tokens`` both ways; answers/s and the ratio are printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from local_inference.engine import Engine
from local_inference.server import serve_in_thread
from openai import OpenAI

from retrain.local.demo import FACTS
from retrain.local.facts import fact_eval_set
from retrain.train.lora.base_models import load_base_model, locate_base_model

BASE = "SmolLM2-135M-Instruct"


def _ask(client: OpenAI, messages: list[dict[str, Any]], max_tokens: int) -> str:
    reply = client.chat.completions.create(model=BASE, messages=messages, max_tokens=max_tokens)  # type: ignore[arg-type]
    return reply.choices[0].message.content or ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    items = (fact_eval_set(list(FACTS)) * 4)[: args.questions]
    prompts = [item["messages"][:-1] for item in items]
    model, tokenizer = load_base_model(locate_base_model(BASE))
    engine = Engine(BASE, model.eval(), tokenizer, BASE)
    with tempfile.TemporaryDirectory() as cache, serve_in_thread(engine, Path(cache), max_batch=64) as server:
        client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        _ask(client, prompts[0], args.max_tokens)  # warm up
        started = time.perf_counter()
        one_by_one = [_ask(client, p, args.max_tokens) for p in prompts]
        sequential = time.perf_counter() - started
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
            batched = list(pool.map(lambda p: _ask(client, p, args.max_tokens), prompts))
        concurrent = time.perf_counter() - started
    same = sum(a == b for a, b in zip(one_by_one, batched, strict=True))
    print(f"{len(prompts)} questions, max_tokens {args.max_tokens}, {BASE} fp32 on the CPU")
    print(f"one at a time: {sequential:.1f} s, {len(prompts) / sequential:.2f} answers/s")
    print(f"batched:       {concurrent:.1f} s, {len(prompts) / concurrent:.2f} answers/s")
    print(
        f"speed-up: {sequential / concurrent:.1f}x (target >= 4x); identical answers: {same}/{len(prompts)}"
    )


if __name__ == "__main__":
    main()
