"""Graders: a model's answer and the reference in, a ``Grade`` out.

A grader is a function ``(output, reference, options) -> Grade`` registered under a name
with ``@register_grader("name")``; eval items pick one by name (``exact_match`` when they
name none). Built in: exact_match, contains, not_contains, regex, json_valid,
json_field_equals, numeric, token_f1, rouge_l, and ``model_graded``, which asks a judge model
with the rubric in ``prompts/judge_rubric.md`` and keeps the judge's raw verdict.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from retrain.exceptions import EvaluationError

__all__ = [
    "DEFAULT_GRADER",
    "JUDGE_RUBRIC_PATH",
    "MODEL_GRADED",
    "Grade",
    "GradeFn",
    "RubricJudge",
    "grade_output",
    "is_registered",
    "normalise",
    "parse_verdict",
    "register_grader",
    "registered_graders",
    "resolve_json_pointer",
]

DEFAULT_GRADER = "exact_match"
MODEL_GRADED = "model_graded"
JUDGE_RUBRIC_PATH = Path(__file__).resolve().parents[2] / "prompts" / "judge_rubric.md"


@dataclass(frozen=True)
class Grade:
    score: float
    passed: bool
    explanation: str
    verdict: str | None = None


class GradeFn(Protocol):
    def __call__(self, output: str, reference: str, options: Mapping[str, Any]) -> Grade: ...


_REGISTRY: dict[str, GradeFn] = {}


def register_grader(name: str) -> Callable[[GradeFn], GradeFn]:
    """Register a grader function under ``name`` (the plugin interface)."""

    def add(fn: GradeFn) -> GradeFn:
        if name in _REGISTRY or name == MODEL_GRADED:
            raise EvaluationError(f"grader {name!r} is already registered: pick another name")
        _REGISTRY[name] = fn
        return fn

    return add


def is_registered(name: str) -> bool:
    return name in _REGISTRY or name == MODEL_GRADED


def registered_graders() -> list[str]:
    return sorted([*_REGISTRY, MODEL_GRADED])


def grade_output(grader: str, output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    """Grade with a registered (non-model) grader."""
    if grader == MODEL_GRADED:
        raise EvaluationError("the model_graded grader needs a judge: set RETRAIN_EVALUATION__JUDGE_MODEL")
    fn = _REGISTRY.get(grader)
    if fn is None:
        raise EvaluationError(f"unknown grader {grader!r}: use one of {', '.join(registered_graders())}")
    return fn(output, reference, options)


def _binary(passed: bool, explanation: str) -> Grade:
    return Grade(score=1.0 if passed else 0.0, passed=passed, explanation=explanation)


def _option(options: Mapping[str, Any], name: str, grader: str) -> Any:
    if name not in options:
        raise EvaluationError(f"grader {grader!r} needs grader_options.{name}: add it to the eval item")
    return options[name]


_PUNCT = str.maketrans("", "", string.punctuation)


def normalise(text: str, *, strip_punctuation: bool = False) -> str:
    """Case-folded, whitespace-collapsed text (optionally without punctuation)."""
    text = text.casefold()
    if strip_punctuation:
        text = text.translate(_PUNCT)
    return " ".join(text.split())


@register_grader("exact_match")
def exact_match(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    """Equal after case folding, whitespace collapsing and (by default) dropping punctuation."""
    strip = bool(options.get("strip_punctuation", True))
    got, want = normalise(output, strip_punctuation=strip), normalise(reference, strip_punctuation=strip)
    return _binary(got == want, "exact match" if got == want else f"expected {want!r}, got {got!r}")


def _needles(options: Mapping[str, Any], reference: str) -> list[str]:
    value = options.get("substrings", options.get("substring", reference))
    return [value] if isinstance(value, str) else [str(v) for v in value]


@register_grader("contains")
def contains(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    """Every substring (grader_options.substring(s), default the reference) appears, case-insensitively."""
    text = normalise(output)
    missing = [n for n in _needles(options, reference) if normalise(n) not in text]
    return _binary(not missing, f"missing {missing!r}" if missing else "all substrings present")


@register_grader("not_contains")
def not_contains(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    """No substring (grader_options.substring(s), default the reference) appears, case-insensitively."""
    text = normalise(output)
    found = [n for n in _needles(options, reference) if normalise(n) in text]
    return _binary(not found, f"found forbidden {found!r}" if found else "no forbidden substring")


@register_grader("regex")
def regex(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    """re.search of grader_options.pattern (default: the reference); option ignore_case."""
    pattern = str(options.get("pattern", reference))
    try:
        compiled = re.compile(pattern, re.IGNORECASE if options.get("ignore_case") else 0)
    except re.error as exc:
        raise EvaluationError(
            f"regex grader: invalid pattern {pattern!r} ({exc}); fix the eval item"
        ) from exc
    hit = compiled.search(output) is not None
    return _binary(hit, f"pattern {pattern!r} {'matched' if hit else 'not found'}")


def _load_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


@register_grader("json_valid")
def json_valid(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    ok, _ = _load_json(output.strip())
    return _binary(ok, "valid JSON" if ok else "not valid JSON")


_MISSING = object()


def resolve_json_pointer(document: Any, pointer: str) -> Any:
    """The value at an RFC 6901 JSON pointer; KeyError if the document has none."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise EvaluationError(f"JSON pointer {pointer!r} must be empty or start with '/'")
    node = document
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(pointer)
    return node


@register_grader("json_field_equals")
def json_field_equals(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    """The value at grader_options.pointer equals grader_options.expected (default: the reference's)."""
    pointer = str(_option(options, "pointer", "json_field_equals"))
    ok, document = _load_json(output.strip())
    if not ok:
        return _binary(False, "output is not valid JSON")
    if "expected" in options:
        expected = options["expected"]
    else:
        ref_ok, ref_doc = _load_json(reference)
        try:
            expected = resolve_json_pointer(ref_doc, pointer) if ref_ok else _MISSING
        except KeyError:
            expected = _MISSING
        if expected is _MISSING:
            raise EvaluationError(
                f"json_field_equals: the reference has no {pointer!r}; set grader_options.expected"
            )
    try:
        got = resolve_json_pointer(document, pointer)
    except KeyError:
        return _binary(False, f"{pointer} missing")
    return _binary(got == expected, f"{pointer} = {got!r}, expected {expected!r}")


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _numbers(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text) if any(c.isdigit() for c in m)]


@register_grader("numeric")
def numeric(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    """The last number in the output is within abs_tol / rel_tol of the expected number."""
    expected_values = [float(options["expected"])] if "expected" in options else _numbers(reference)
    if not expected_values:
        raise EvaluationError("numeric grader: the reference holds no number; set grader_options.expected")
    expected = expected_values[-1]
    found = _numbers(output)
    if not found:
        return _binary(False, "no number in the output")
    got = found[-1]
    close = math.isclose(
        got, expected, abs_tol=float(options.get("abs_tol", 1e-9)), rel_tol=float(options.get("rel_tol", 0.0))
    )
    return _binary(close, f"got {got:g}, expected {expected:g}")


def _tokens(text: str) -> list[str]:
    return normalise(text, strip_punctuation=True).split()


def _scored(score: float, options: Mapping[str, Any], name: str) -> Grade:
    threshold = float(options.get("threshold", 0.5))
    return Grade(
        score=score, passed=score >= threshold, explanation=f"{name} {score:.3f} (pass >= {threshold})"
    )


def _f1(overlap: float, n_got: int, n_want: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_got, overlap / n_want
    return 2 * precision * recall / (precision + recall)


@register_grader("token_f1")
def token_f1(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    """SQuAD-style bag-of-tokens F1; passes at grader_options.threshold (default 0.5)."""
    got, want = _tokens(output), _tokens(reference)
    if not got or not want:
        return _scored(1.0 if got == want else 0.0, options, "token F1")
    overlap = sum((Counter(got) & Counter(want)).values())
    return _scored(_f1(overlap, len(got), len(want)), options, "token F1")


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


@register_grader("rouge_l")
def rouge_l(output: str, reference: str, options: Mapping[str, Any]) -> Grade:
    """ROUGE-L F-measure (longest common token subsequence); passes at threshold (default 0.5)."""
    got, want = _tokens(output), _tokens(reference)
    if not got or not want:
        return _scored(1.0 if got == want else 0.0, options, "ROUGE-L")
    return _scored(_f1(_lcs_length(got, want), len(got), len(want)), options, "ROUGE-L")


_VERDICT = re.compile(r"\{.*\}", re.DOTALL)
Complete = Callable[[list[dict[str, Any]]], Awaitable[str]]


class RubricJudge:
    """The model_graded grader: a judge model scores the answer against the reference and rubric.

    ``complete`` sends chat messages to the judge model and returns its reply text (the runner
    supplies it, so judge calls share the rate limiter, retries and cache).
    """

    def __init__(self, complete: Complete, template: str | None = None) -> None:
        self._complete = complete
        if template is None:
            try:
                template = JUDGE_RUBRIC_PATH.read_text(encoding="utf-8")
            except OSError as exc:
                raise EvaluationError(f"cannot read the judge rubric {JUDGE_RUBRIC_PATH}: {exc}") from exc
        self._template = template

    def prompt(
        self, output: str, prompt_messages: Sequence[Mapping[str, Any]], reference: str, criteria: str
    ) -> str:
        question = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt_messages)
        fields = {"question": question, "reference": reference, "answer": output, "criteria": criteria}
        text = self._template
        for name, value in fields.items():
            text = text.replace("{{" + name + "}}", value)
        return text

    async def grade(
        self,
        output: str,
        prompt_messages: Sequence[Mapping[str, Any]],
        reference: str,
        options: Mapping[str, Any],
    ) -> Grade:
        criteria = str(options.get("criteria", "The answer is correct and consistent with the reference."))
        content = self.prompt(output, prompt_messages, reference, criteria)
        verdict = await self._complete([{"role": "user", "content": content}])
        return parse_verdict(verdict, float(options.get("threshold", 0.5)))


def parse_verdict(verdict: str, threshold: float) -> Grade:
    """Read the judge's JSON verdict ``{"score": 0..1, "reasoning": ...}``; unreadable means fail."""
    match = _VERDICT.search(verdict)
    ok, parsed = _load_json(match.group(0)) if match else (False, None)
    fields: dict[str, Any] = parsed if ok and isinstance(parsed, dict) else {}
    score = fields.get("score")
    if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 1:
        return Grade(score=0.0, passed=False, explanation="judge verdict unreadable", verdict=verdict)
    reasoning = str(fields.get("reasoning", ""))[:500]
    return Grade(score=float(score), passed=score >= threshold, explanation=reasoning, verdict=verdict)
