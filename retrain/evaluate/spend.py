"""What an evaluation costs: estimated before it runs, counted from the answers' ``usage`` after.

The estimate is items x models x expected tokens: each item's prompt (counted with the model
family's tokenizer, ``o200k_base`` where it has none) and an answer as long as its reference, at
most ``max_tokens``; a ``model_graded`` item adds a judge call per model (the rubric, the prompt,
the reference and the answer in, a short verdict out). Prices are (input, output) dollars per
million tokens by model family (``RETRAIN_EVALUATION__INFERENCE_USD_PER_MILLION_TOKENS``, looked
up like the training price table); a model without a price is counted at $0 and named
(``unpriced``), as a model on the team's own GPUs costs nothing per token.

The count after reads what was sent: the ``usage`` of every answer that did not come from the
answer cache, and the judge's (``EvalReport.usage``). A retry that finds answers in the cache
therefore costs only what it asks again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import tiktoken

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.eval_sets import EvalSet
from retrain.evaluate.graders import JUDGE_RUBRIC_PATH, MODEL_GRADED
from retrain.exceptions import BudgetExceeded, ConfigError
from retrain.validate.tokens import (
    count_messages,
    count_text,
    encoding_for_model,
    get_encoding,
    lookup_by_family,
)

__all__ = [
    "EvalCost",
    "check_evaluation_cost",
    "counted_cost",
    "dollars",
    "estimate_evaluation_cost",
    "price_of",
]

_JUDGE_VERDICT_TOKENS = 64


@dataclass
class EvalCost:
    """Tokens and dollars of evaluations (one, or a night's), estimated or counted."""

    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    unpriced: list[str] = field(default_factory=list)

    def add(self, model_id: str, input_tokens: int, output_tokens: int, settings: EvaluationSettings) -> None:
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        price = price_of(model_id, settings)
        if price is None:
            if model_id not in self.unpriced:
                self.unpriced.append(model_id)
            return
        self.usd = round(self.usd + (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000, 6)

    @classmethod
    def total(cls, costs: Iterable[EvalCost]) -> EvalCost:
        """Several costs added up (``plus`` over all of them)."""
        total = cls()
        for cost in costs:
            total = total.plus(cost)
        return total

    def plus(self, other: EvalCost) -> EvalCost:
        unpriced = self.unpriced + [m for m in other.unpriced if m not in self.unpriced]
        return EvalCost(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            round(self.usd + other.usd, 6),
            unpriced,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def line(self) -> str:
        """``$0.42 (120,000 tokens in, 30,000 out)``, naming the models without a price."""
        text = f"{dollars(self.usd)} ({self.input_tokens:,} tokens in, {self.output_tokens:,} out)"
        if self.unpriced:
            text += f"; no price for {', '.join(self.unpriced)}, counted as $0"
        return text


def dollars(usd: float) -> str:
    """``$12.30``; below a dollar to a hundredth of a cent (``$0.0042``), as eval runs often cost."""
    return f"${usd:,.2f}" if usd >= 1 or usd == 0 else f"${usd:.4f}"


def price_of(model_id: str, settings: EvaluationSettings) -> tuple[float, float] | None:
    """The (input, output) price per million tokens of ``model_id``'s family, or None."""
    try:
        price: tuple[float, float] = lookup_by_family(
            settings.inference_usd_per_million_tokens, model_id, "price"
        )
    except ConfigError:
        return None
    return price


def _encoding(model_id: str) -> tiktoken.Encoding:
    try:
        return encoding_for_model(model_id)
    except ConfigError:
        return get_encoding("o200k_base")


def estimate_evaluation_cost(
    eval_set: EvalSet, model_ids: Sequence[str], settings: EvaluationSettings
) -> EvalCost:
    """The expected cost of asking every model every item of ``eval_set`` (see the module doc)."""
    cost = EvalCost()
    judged = [item for item in eval_set.items if item.grader == MODEL_GRADED]
    judge_in = 0  # what the judge reads for one model's answers: the same for every model
    if judged and settings.judge_model:
        judge = _encoding(settings.judge_model)
        rubric = count_text(JUDGE_RUBRIC_PATH.read_text(encoding="utf-8"), judge)
        judge_in = sum(
            rubric
            + count_messages(item.prompt_messages, judge)
            + 2 * min(count_text(item.reference, judge), settings.max_tokens)
            for item in judged
        )
    for model_id in model_ids:
        encoding = _encoding(model_id)
        prompts = sum(count_messages(item.prompt_messages, encoding) for item in eval_set.items)
        answers = sum(
            min(count_text(item.reference, encoding), settings.max_tokens) for item in eval_set.items
        )
        samples = settings.samples_per_item
        cost.add(model_id, prompts * samples, answers * samples, settings)
        if judge_in and settings.judge_model:
            verdicts = _JUDGE_VERDICT_TOKENS * len(judged)
            cost.add(settings.judge_model, judge_in * samples, verdicts * samples, settings)
    return cost


def counted_cost(usage: Mapping[str, Mapping[str, int]], settings: EvaluationSettings) -> EvalCost:
    """What the tokens sent (``EvalReport.usage``: model id -> prompt and completion tokens) cost."""
    cost = EvalCost()
    for model_id, tokens in usage.items():
        cost.add(model_id, tokens.get("prompt_tokens", 0), tokens.get("completion_tokens", 0), settings)
    return cost


def check_evaluation_cost(estimates: Iterable[EvalCost], settings: EvaluationSettings) -> EvalCost:
    """The night's estimate over all its eval sets; BudgetExceeded above ``max_eval_cost_usd``."""
    total = EvalCost.total(estimates)
    limit = settings.max_eval_cost_usd
    if limit is not None and total.usd > limit:
        raise BudgetExceeded(
            f"tonight's evaluation is estimated at {total.line}, above max_eval_cost_usd ${limit:,.2f}: "
            "nothing was asked; raise RETRAIN_EVALUATION__MAX_EVAL_COST_USD or evaluate fewer items"
        )
    return total
