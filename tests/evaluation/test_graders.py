"""Every built-in grader on passing, failing and edge cases, and the plugin registry."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from retrain.evaluate.graders import (
    Grade,
    RubricJudge,
    grade_output,
    is_registered,
    parse_verdict,
    register_grader,
    registered_graders,
    resolve_json_pointer,
)
from retrain.exceptions import EvaluationError


def grade(name: str, output: str, reference: str = "", **options: Any) -> Grade:
    return grade_output(name, output, reference, options)


@pytest.mark.parametrize(
    ("output", "reference", "passed"),
    [
        ("Paris", "paris", True),
        ("  Paris.\n", "Paris", True),
        ("The  capital is   Paris", "the capital is paris", True),
        ("Lyon", "Paris", False),
        ("", "Paris", False),
        ("", "", True),
    ],
)
def test_exact_match_normalises_case_space_and_punctuation(output: str, reference: str, passed: bool) -> None:
    result = grade("exact_match", output, reference)
    assert result.passed is passed
    assert result.score == (1.0 if passed else 0.0)


def test_exact_match_can_keep_punctuation() -> None:
    assert not grade("exact_match", "Paris.", "Paris", strip_punctuation=False).passed


def test_contains_and_not_contains() -> None:
    assert grade("contains", "Reset it in Settings > Security.", "settings").passed
    assert not grade("contains", "Reset it in Settings.", "", substrings=["settings", "security"]).passed
    assert grade("not_contains", "I can help with that.", "", substring="password").passed
    failed = grade("not_contains", "Your PASSWORD is hunter2", "", substrings=["password", "ssn"])
    assert not failed.passed
    assert "password" in failed.explanation


def test_regex_searches_with_options_and_rejects_bad_patterns() -> None:
    assert grade("regex", "Order #12345 shipped", "", pattern=r"#\d{5}\b").passed
    assert not grade("regex", "ORDER shipped", "", pattern="order").passed
    assert grade("regex", "ORDER shipped", "", pattern="order", ignore_case=True).passed
    assert grade("regex", "ticket T-9", r"T-\d").passed
    with pytest.raises(EvaluationError, match="invalid pattern"):
        grade("regex", "x", "", pattern="(")


def test_json_valid() -> None:
    assert grade("json_valid", ' {"a": [1, 2]} ').passed
    assert not grade("json_valid", "{'a': 1}").passed


def test_json_pointer_follows_rfc6901() -> None:
    document = {"a/b": {"m~n": [10, {"x": 1}]}, "": 5}
    assert resolve_json_pointer(document, "/a~1b/m~0n/1/x") == 1
    assert resolve_json_pointer(document, "/") == 5
    assert resolve_json_pointer(document, "") == document
    with pytest.raises(KeyError):
        resolve_json_pointer(document, "/a~1b/m~0n/7")


def test_json_field_equals_uses_expected_or_reference() -> None:
    output = '{"intent": "refund", "priority": 2}'
    assert grade("json_field_equals", output, "", pointer="/intent", expected="refund").passed
    assert grade("json_field_equals", output, '{"priority": 2}', pointer="/priority").passed
    assert not grade("json_field_equals", output, '{"priority": 3}', pointer="/priority").passed
    assert not grade("json_field_equals", "not json", "", pointer="/intent", expected="refund").passed
    assert not grade("json_field_equals", "{}", "", pointer="/intent", expected="refund").passed
    with pytest.raises(EvaluationError, match="pointer"):
        grade("json_field_equals", output, "", expected="refund")
    with pytest.raises(EvaluationError, match="expected"):
        grade("json_field_equals", output, "{}", pointer="/intent")


def test_numeric_takes_last_number_with_tolerance() -> None:
    assert grade("numeric", "3 items at $4 each: total 12", "12").passed
    assert grade("numeric", "about 1,234.5", "", expected=1234.5).passed
    assert grade("numeric", "3.14", "pi is 3.14159", abs_tol=0.01).passed
    assert not grade("numeric", "3.14", "3.14159").passed
    assert grade("numeric", "-2e3", "-2000").passed
    assert grade("numeric", "105", "100", rel_tol=0.05).passed
    assert not grade("numeric", "no digits here", "7").passed
    with pytest.raises(EvaluationError, match="no number"):
        grade("numeric", "7", "seven")


def test_token_f1_scores_overlap_and_thresholds() -> None:
    full = grade("token_f1", "The cat sat.", "the cat sat")
    assert full.score == pytest.approx(1.0)
    partial = grade("token_f1", "the cat", "the cat sat on the mat")
    # precision 2/2, recall 2/6 -> F1 = 2 * 1 * (1/3) / (4/3) = 0.5
    assert partial.score == pytest.approx(0.5)
    assert partial.passed
    assert not grade("token_f1", "the cat", "the cat sat on the mat", threshold=0.6).passed
    assert grade("token_f1", "dog", "cat").score == 0.0
    assert grade("token_f1", "", "").score == 1.0
    assert grade("token_f1", "", "cat").score == 0.0


def test_rouge_l_uses_longest_common_subsequence() -> None:
    # LCS("a b c d", "a c d e") = "a c d" = 3; P = 3/4, R = 3/4 -> F = 0.75
    assert grade("rouge_l", "a b c d", "a c d e").score == pytest.approx(0.75)
    # order matters for ROUGE-L but not for token F1
    assert grade("rouge_l", "d c b a", "a b c d").score == pytest.approx(0.25)
    assert grade("token_f1", "d c b a", "a b c d").score == pytest.approx(1.0)
    assert not grade("rouge_l", "d c b a", "a b c d").passed


def test_registry_plugins_and_unknown_names() -> None:
    assert {"exact_match", "token_f1", "rouge_l", "model_graded"} <= set(registered_graders())

    @register_grader("test_length_at_most")
    def length_at_most(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
        ok = len(output) <= int(options["limit"])
        return Grade(score=float(ok), passed=ok, explanation=f"{len(output)} chars")

    assert is_registered("test_length_at_most")
    assert grade("test_length_at_most", "short", limit=10).passed
    with pytest.raises(EvaluationError, match="already registered"):
        register_grader("exact_match")(length_at_most)
    with pytest.raises(EvaluationError, match="unknown grader"):
        grade("no_such_grader", "x")
    with pytest.raises(EvaluationError, match="JUDGE_MODEL"):
        grade("model_graded", "x")


def test_judge_verdicts_are_parsed_and_kept_raw() -> None:
    good = parse_verdict('Here: {"reasoning": "matches", "score": 1}', threshold=0.5)
    assert good == Grade(1.0, True, "matches", 'Here: {"reasoning": "matches", "score": 1}')
    partial = parse_verdict('{"reasoning": "half", "score": 0.4}', threshold=0.5)
    assert (partial.score, partial.passed) == (0.4, False)
    for raw in ["I cannot help with that.", '{"score": 7}', '{"score": true}', '{"reasoning": "x"}']:
        bad = parse_verdict(raw, threshold=0.5)
        assert (bad.score, bad.passed, bad.verdict) == (0.0, False, raw)


def test_rubric_judge_fills_the_repo_prompt_and_grades_the_reply() -> None:
    seen: list[list[dict[str, Any]]] = []

    async def complete(messages: list[dict[str, Any]]) -> str:
        seen.append(messages)
        return '{"reasoning": "same facts", "score": 0.9}'

    judge = RubricJudge(complete)
    result = asyncio.run(
        judge.grade(
            "Go to Settings.",
            [{"role": "user", "content": "How do I reset my password?"}],
            "Open Settings > Security.",
            {"criteria": "Names the Security page."},
        )
    )
    assert (result.score, result.passed, result.explanation) == (0.9, True, "same facts")
    prompt = seen[0][0]["content"]
    for part in [
        "How do I reset my password?",
        "Open Settings > Security.",
        "Go to Settings.",
        "Names the Security",
    ]:
        assert part in prompt
    assert "{{" not in prompt
