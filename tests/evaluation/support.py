"""A fine-tuned model on the local server, for evaluation tests that need one better than base."""

from __future__ import annotations

import io
import time

import orjson
from openai import OpenAI

from retrain.local.synthetic import make_examples

BASE = "gpt-4o-mini-2024-07-18"


def fine_tune(client: OpenAI, *, examples: int = 600) -> str:
    """Train BASE on synthetic support data and return the fine-tuned model id."""
    body = b"".join(orjson.dumps(example) + b"\n" for example in make_examples(examples, seed=1))
    training = client.files.create(file=("train.jsonl", io.BytesIO(body)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=training.id, seed=1)
    deadline = time.monotonic() + 300
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"fine-tuning job stuck in {job.status}"
        time.sleep(0.2)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded" and job.fine_tuned_model
    return job.fine_tuned_model
