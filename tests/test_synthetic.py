"""The synthetic support data: deterministic, held-out phrasing, and dirty lines that are really dirty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_openai.training_files import InvalidFile, read_pairs

from retrain.local.synthetic import SYSTEM_PROMPT, intents, make_dirty_lines, make_eval_set, make_examples


def _questions(examples: list[dict[str, list[dict[str, str]]]]) -> set[str]:
    return {m["content"] for e in examples for m in e["messages"] if m["role"] == "user"}


def test_intents_are_distinct_with_exact_answers() -> None:
    catalogue = intents()
    assert len(catalogue) == 300
    assert len({i.answer for i in catalogue}) == 300
    assert catalogue[0].answer.startswith("To reset your password, open ")
    assert intents(20, seed=3) == intents(20, seed=3)
    with pytest.raises(ValueError, match="n_intents"):
        intents(301)


def test_examples_are_deterministic_chat_records() -> None:
    examples = make_examples(50, seed=7)
    assert examples == make_examples(50, seed=7)
    assert examples != make_examples(50, seed=8)
    assert all([m["role"] for m in e["messages"]] == ["system", "user", "assistant"] for e in examples)
    assert examples[0]["messages"][0]["content"] == SYSTEM_PROMPT
    bare = make_examples(5, seed=7, system_prompt=False)
    assert all([m["role"] for m in e["messages"]] == ["user", "assistant"] for e in bare)


def test_wrong_answer_rate_swaps_answers_for_other_intents() -> None:
    answers = {i.answer for i in intents()}
    right = make_examples(400, seed=1)
    wrong = make_examples(400, seed=1, wrong_answer_rate=0.5)
    assert _questions(right) == _questions(wrong)
    changed = sum(a["messages"][-1] != b["messages"][-1] for a, b in zip(right, wrong, strict=True))
    assert 100 < changed < 300
    assert all(e["messages"][-1]["content"] in answers for e in wrong)


def test_eval_questions_never_appear_in_training_sets() -> None:
    held_out = _questions(make_eval_set(500, seed=1))
    for seed in range(5):
        assert not held_out & _questions(make_examples(2000, seed=seed))


def test_every_dirty_line_is_rejected_by_the_training_file_check(tmp_path: Path) -> None:
    good = [json.dumps(e) for e in make_examples(12, seed=2)]
    for number, line in enumerate(make_dirty_lines(12, seed=4)):
        path = tmp_path / f"dirty-{number}.jsonl"
        path.write_text("\n".join([*good, line]))
        with pytest.raises(InvalidFile, match="line 13"):
            read_pairs(path, method="supervised")
