"""End to end on a real language model: one night of the real nightly flow with the lora backend
on SmolLM2-135M-Instruct. The night's examples teach made-up facts; the flow dispatches the
`train-lora` deployment (served by a Prefect runner, as `retrain serve` does), the adapter is
trained for real and saved in the bucket (moto's S3 server), loaded into the CPU inference server,
evaluated there against the base model on held-out questions about those facts, and promoted
because it answers them clearly better than the base model, which cannot know them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest
from local_inference.engine import Engine
from local_inference.server import serve_in_thread
from local_openai.server import ServerHandle
from openai import OpenAI

from retrain.config.services import S3Settings
from retrain.config.settings import get_settings
from retrain.evaluate.eval_sets import put_eval_set
from retrain.local.facts import fact_eval_set, fact_examples, facts
from retrain.promote.decision import load_decision
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore
from retrain.train.budget import month_jobs
from retrain.train.lora.base_models import load_base_model, locate_base_model

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BASE = "SmolLM2-135M-Instruct"
KNOWN = facts(12, seed=3)


@pytest.fixture
def inference() -> Iterator[ServerHandle]:
    model, tokenizer = load_base_model(locate_base_model(BASE))
    engine = Engine(BASE, model.eval(), tokenizer, BASE, max_model_len=2048)
    with serve_in_thread(
        engine, Path(os.environ.get("TMPDIR", "/tmp")) / "retrain-inference-cache"
    ) as handle:
        yield handle


def _wait_for_deployment(name: str, process: subprocess.Popen[bytes]) -> None:
    """Until ``serve`` in ``process`` has registered the deployment (it imports torch first)."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                assert process.poll() is None, f"the train-lora runner exited ({process.returncode})"
                assert time.monotonic() < deadline, f"the train-lora runner did not deploy {name} in 120 s"
                time.sleep(0.2)


@pytest.fixture
def train_lora_runner(prefect_harness: None) -> Iterator[None]:
    """The train-lora deployment, served by a process of its own (its flow runs are subprocesses)."""
    from prefect.settings import PREFECT_API_URL

    # The runner looks for scheduled runs every second instead of every ten, as a test can afford.
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    script = "from flows.train_lora import train_lora; train_lora.serve(name='train-lora', limit=1)"
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env)
    try:
        _wait_for_deployment("train-lora/train-lora", process)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_night_trains_a_real_adapter_and_promotes_it_over_the_base_model(
    s3_env: S3Settings,
    inference: ServerHandle,
    train_lora_runner: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "RETRAIN_TRAINING__BACKEND": "lora",
        "RETRAIN_LORA__SERVING_URL": inference.base_url,
        "RETRAIN_LORA__EPOCHS": "3",
        "RETRAIN_LORA__LEARNING_RATE": "4e-3",
        "RETRAIN_TRAINING__POLL_INTERVAL_SECONDS": "1",
        "RETRAIN_TRAINING__MAX_POLL_INTERVAL_SECONDS": "2",
        "RETRAIN_EVALUATION__MAX_TOKENS": "8",
        "RETRAIN_EVALUATION__CONCURRENCY": "16",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    store = ObjectStore.from_settings(s3_env)
    store.ensure_bucket()
    put_eval_set(store, "main", fact_eval_set(KNOWN))
    lines = [orjson.dumps(example) for example in fact_examples(KNOWN, seed=3)]
    store.put_bytes("incoming/2026-12-01/facts.jsonl", b"\n".join(lines) + b"\n")

    from flows.nightly import nightly_retrain

    started = time.perf_counter()
    state = nightly_retrain(night=date(2026, 12, 1), return_state=True)
    print(f"night took {time.perf_counter() - started:.0f} s: {state.message}")
    assert state.is_completed(), state.message
    assert "promoted" in state.message, state.message

    production = Registry(store).get("production")
    assert production is not None and production.provider == "lora" and production.artifact
    assert production.content_hash and production.artifact.startswith(f"s3://{s3_env.bucket}/models/lora/")
    decision = load_decision(store, production.dataset_version or "")
    assert decision is not None and decision.promote and decision.production.model_id == BASE
    print(f"held-out: candidate {decision.candidate_score:.2f}, base {decision.production_score:.2f}")
    assert decision.candidate_score >= decision.production_score + 0.25  # clearly better

    (spent,) = month_jobs(store, f"{datetime.now(UTC):%Y-%m}").values()
    assert spent["backend"] == "lora" and spent["status"] == "succeeded"  # `retrain spend` shows it
    assert spent["gpu_seconds"] > 0 and spent["trained_tokens"] > 0

    answers = OpenAI(base_url=inference.base_url, api_key="x", max_retries=0)
    item = fact_eval_set(KNOWN)[0]
    reply = answers.chat.completions.create(
        model=production.model_id, messages=item["messages"][:-1], max_tokens=8
    )
    print(
        "fine-tuned answer:", reply.choices[0].message.content, "expected:", item["messages"][-1]["content"]
    )
