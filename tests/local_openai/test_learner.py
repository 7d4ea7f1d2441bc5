"""The learner and the training-file check, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_openai.learner import FALLBACK_REPLY, Learner, Pair, StepMetrics, pairs_from_chat, token_accuracy
from local_openai.training_files import InvalidFile, read_pairs

from retrain.local.synthetic import intents, make_examples


def _pairs(n: int, seed: int, wrong: float = 0.0) -> list[Pair]:
    return [
        p
        for e in make_examples(n, seed=seed, wrong_answer_rate=wrong)
        for p in pairs_from_chat(e["messages"])
    ]


def test_pairs_follow_user_turns_and_skip_zero_weight_answers() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "first", "weight": 0},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "second"},
    ]
    assert pairs_from_chat(messages) == [Pair("a\nb", "second")]


def test_token_accuracy_counts_words_in_place() -> None:
    assert token_accuracy("open the door", "open the door") == 1.0
    assert token_accuracy("open a door", "open the door") == pytest.approx(2 / 3)
    assert token_accuracy("", "open") == 0.0


def test_training_loss_is_scored_before_each_batch_is_absorbed() -> None:
    steps: list[StepMetrics] = []
    Learner.fit(_pairs(200, seed=1), n_epochs=2, batch_size=20, on_step=steps.append)
    assert len(steps) == 20
    assert steps[0].train_mean_token_accuracy == 0.0
    assert steps[0].train_loss > steps[9].train_loss


def test_answers_known_questions_and_falls_back_on_unrelated_ones(tmp_path: Path) -> None:
    learner = Learner.fit(_pairs(1000, seed=1), _pairs(100, seed=2))
    learner.save(tmp_path / "model.pkl")
    loaded = Learner.load(tmp_path / "model.pkl")
    assert loaded.answer("How do I reset my password?") == intents()[0].answer
    assert loaded.answer("What's the weather in Paris tomorrow?") == FALLBACK_REPLY


def test_validation_metrics_are_worse_with_wrong_answers() -> None:
    valid = _pairs(100, seed=2)
    clean = Learner.fit(_pairs(1000, seed=1), valid).evaluate(valid)
    noisy = Learner.fit(_pairs(1000, seed=1, wrong=0.5), valid).evaluate(valid)
    assert noisy[0] > clean[0] and noisy[1] < clean[1]


def test_ten_thousand_examples_train(tmp_path: Path) -> None:
    learner = Learner.fit(_pairs(10_000, seed=1), n_epochs=1, batch_size=256)
    assert learner.answer("How do I reset my password?") == intents()[0].answer


def _write(tmp_path: Path, records: list[object]) -> Path:
    path = tmp_path / "file.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    return path


def test_preference_files_train_on_the_preferred_output(tmp_path: Path) -> None:
    record = {
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    pairs, tokens = read_pairs(_write(tmp_path, [record] * 10), method="dpo")
    assert pairs == [Pair("hi", "good")] * 10 and tokens == 20
    with pytest.raises(InvalidFile, match="non_preferred_output"):
        read_pairs(_write(tmp_path, [{**record, "non_preferred_output": []}] * 10), method="dpo")


def test_chat_files_need_ten_examples_and_an_assistant_turn(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile, match="at least 10"):
        read_pairs(_write(tmp_path, make_examples(9, seed=1)), method="supervised")
    no_answer = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(InvalidFile, match="line 11: no assistant message"):
        read_pairs(_write(tmp_path, [*make_examples(10, seed=1), no_answer]), method="supervised")
