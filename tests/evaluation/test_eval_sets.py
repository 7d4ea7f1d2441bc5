"""Eval sets stored in S3: round trip, versions, and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from retrain.evaluate.eval_sets import load_eval_set, put_eval_set
from retrain.exceptions import EvaluationError
from retrain.storage.layout import eval_set_key
from retrain.storage.object_store import ObjectStore


@pytest.fixture
def store(moto_store: ObjectStore) -> ObjectStore:
    return moto_store


def example(question: str, answer: str, **extra: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "You are a support assistant."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    return {"messages": messages, **extra}


def test_round_trip_splits_prompt_and_reference(store: ObjectStore) -> None:
    put_eval_set(
        store,
        "main",
        [
            example("Reset password?", "Settings > Security", id="q1"),
            example("Refund?", "Within 30 days", grader="contains", grader_options={"substring": "30 days"}),
        ],
    )
    loaded = load_eval_set(store, "main")
    assert loaded.name == "main"
    assert len(loaded.version) == 64
    first, second = loaded.items
    assert first.id == "q1"
    assert [m["role"] for m in first.prompt_messages] == ["system", "user"]
    assert first.reference == "Settings > Security"
    assert first.grader == "exact_match"
    assert second.grader == "contains"
    assert second.grader_options == {"substring": "30 days"}
    assert second.id == second.item_hash[:16]
    assert first.item_hash != second.item_hash


def test_version_and_item_hash_follow_content(store: ObjectStore) -> None:
    one = put_eval_set(store, "main", [example("Q", "A", id="x")])
    same_prompt = put_eval_set(store, "other", [example("Q", "B", id="x")])
    assert one.version != same_prompt.version
    assert one.items[0].item_hash == same_prompt.items[0].item_hash
    assert put_eval_set(store, "main", [example("Q", "A", id="x")]).version == one.version


def test_missing_set_names_the_key_and_how_to_fix_it(store: ObjectStore) -> None:
    with pytest.raises(
        EvaluationError, match=r"eval set 'guardrail' not found at s3://test-bucket/eval/guardrail/"
    ) as raised:
        load_eval_set(store, "guardrail")
    assert "upload it there" in str(raised.value) and "RETRAIN_EVALUATION__EVAL_SET" in str(raised.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "final assistant reference"),
        (
            b'{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "x"}]}',
            "must be an assistant message",
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}],'
            b' "grader": "nope"}',
            "unknown grader 'nope'",
        ),
    ],
)
def test_malformed_lines_are_named(store: ObjectStore, line: bytes, problem: str) -> None:
    good = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}'
    store.put_bytes(eval_set_key("main"), good + b"\n" + line + b"\n")
    with pytest.raises(EvaluationError, match=rf"eval/main/items.jsonl line 2: .*{problem}"):
        load_eval_set(store, "main")


def test_empty_sets_and_duplicate_ids_are_refused(store: ObjectStore) -> None:
    store.put_bytes(eval_set_key("empty"), b"\n\n")
    with pytest.raises(EvaluationError, match="holds no items"):
        load_eval_set(store, "empty")
    with pytest.raises(EvaluationError, match="'a' appears twice"):
        put_eval_set(store, "dup", [example("Q1", "A", id="a"), example("Q2", "A", id="a")])
    assert not store.exists(eval_set_key("dup"))
