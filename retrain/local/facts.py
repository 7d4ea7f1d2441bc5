"""Made-up facts for the lora story: questions no pretrained model can answer, so a held-out score
above the base model's shows that the adapter learned.

Each fact is an invented place with an invented one-word answer per attribute ("What colour is
the flag of Velmora?" -> "teal"). Training examples ask with some question templates, eval items
with others, so an eval question never appears verbatim in training; eval items grade with
``contains`` on the one-word answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["FACT_SYSTEM_PROMPT", "Fact", "fact_eval_set", "fact_examples", "facts"]

FACT_SYSTEM_PROMPT = "You answer questions about the Kepler Reach atlas in one word."

_PLACES = (
    "Velmora",
    "Quandrix",
    "Oskelund",
    "Trevanti",
    "Zabrova",
    "Marquelle",
    "Dunhaven",
    "Ishtaro",
    "Pellucida",
    "Korvath",
    "Elsinwe",
    "Brasquel",
    "Tamborine",
    "Vexholm",
    "Aurenna",
    "Gildemar",
)
_ATTRIBUTES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # attribute: (training question templates, eval question templates, answers)
    "flag": (
        (
            "What colour is the flag of {place}?",
            "Which colour is {place}'s flag?",
            "The flag of {place} is what colour?",
        ),
        ("Tell me the colour of the {place} flag.",),
        ("teal", "amber", "violet", "crimson", "ochre", "silver", "indigo", "scarlet"),
    ),
    "animal": (
        (
            "What is the national animal of {place}?",
            "Which animal is the emblem of {place}?",
            "{place}'s national animal is?",
        ),
        ("Name the animal that represents {place}.",),
        ("otter", "heron", "lynx", "badger", "falcon", "walrus", "gecko", "bison"),
    ),
}


@dataclass(frozen=True)
class Fact:
    place: str
    attribute: str
    answer: str


def facts(n: int, *, seed: int = 0) -> list[Fact]:
    """``n`` distinct made-up facts, the same for the same seed."""
    rng = random.Random(f"facts-{seed}")
    pairs = [(place, attribute) for place in _PLACES for attribute in _ATTRIBUTES]
    if n > len(pairs):
        raise ValueError(f"at most {len(pairs)} facts")
    chosen = rng.sample(pairs, n)
    return [Fact(place, attribute, rng.choice(_ATTRIBUTES[attribute][2])) for place, attribute in chosen]


def _chat(question: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": FACT_SYSTEM_PROMPT},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def fact_examples(known: list[Fact], *, wrong: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    """Every training question of every fact with its answer (``wrong``: another answer, a bad export)."""
    rng = random.Random(f"fact-examples-{seed}")
    examples = []
    for fact in known:
        train_templates, _, answers = _ATTRIBUTES[fact.attribute]
        for template in train_templates:
            answer = rng.choice([a for a in answers if a != fact.answer]) if wrong else fact.answer
            examples.append(_chat(template.format(place=fact.place), answer))
    rng.shuffle(examples)
    return examples


def fact_eval_set(known: list[Fact]) -> list[dict[str, Any]]:
    """One held-out eval item a fact, asked with an eval-only template, graded by ``contains``."""
    items = []
    for fact in known:
        _, eval_templates, _ = _ATTRIBUTES[fact.attribute]
        item = _chat(eval_templates[0].format(place=fact.place), fact.answer)
        items.append(item | {"grader": "contains"})
    return items
