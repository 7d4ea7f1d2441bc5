"""Fine-tuning really learns: more data answers a held-out set better, wrong answers make it worse."""

from __future__ import annotations

from typing import Any

import pytest
from openai import OpenAI

from retrain.local.synthetic import make_eval_set, make_examples

from .conftest import upload, wait_for

pytestmark = pytest.mark.slow

BASE = "gpt-4.1-mini-2025-04-14"


def _fine_tune(client: OpenAI, examples: list[dict[str, Any]], validation: str) -> str:
    job = client.fine_tuning.jobs.create(
        model=BASE, training_file=upload(client, examples), validation_file=validation, seed=11
    )
    done = wait_for(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model is not None
    return done.fine_tuned_model


def _exact_match(client: OpenAI, model: str, items: list[dict[str, Any]]) -> float:
    hits = 0
    for item in items:
        *prompt, reference = item["messages"]
        reply = client.chat.completions.create(model=model, messages=prompt, temperature=0)
        hits += reply.choices[0].message.content == reference["content"]
    return hits / len(items)


def test_more_and_better_data_answers_held_out_questions_better(client: OpenAI) -> None:
    held_out = make_eval_set(150, seed=1234)
    validation = upload(client, make_examples(60, seed=99), "valid.jsonl")
    small = _fine_tune(client, make_examples(100, seed=1), validation)
    large = _fine_tune(client, make_examples(1000, seed=1), validation)
    noisy = _fine_tune(client, make_examples(1000, seed=1, wrong_answer_rate=0.5), validation)

    base_score = _exact_match(client, BASE, held_out)
    small_score = _exact_match(client, small, held_out)
    large_score = _exact_match(client, large, held_out)
    noisy_score = _exact_match(client, noisy, held_out)

    assert base_score == 0.0
    assert small_score < large_score
    assert noisy_score < large_score
