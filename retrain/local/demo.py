"""The demo story: several simulated nights of a support assistant on the local stack.

Night 1 promotes a first model over the base model; night 2 adds data and promotes a
better one; night 3 brings data with wrong answers and its candidate is rejected; night 4
has no new data and finishes without any upload or job; night 5 brings a trickle of examples,
too few to train on (they are kept for a later night). Each night ends in a state named for its
outcome: Promoted, Promoted, Rejected, NoNewData, TooFewExamples. The data is synthetic and
deterministic (``retrain.local.synthetic``); the flow that runs each night is the real one. Each demo
starts over on an empty bucket, on the local stack only (it moves `production`).

``retrain demo --trainer lora`` tells the same kind of story with real training: LoRA on
SmolLM2-135M (``FACT_NIGHTS``), taught made-up facts (``retrain.local.facts``) that the base model
cannot know, and graded on held-out questions about them. Night 1 teaches half the facts, night 2
the other half, night 3 is a bad export that contradicts night 1's answers, night 4 is quiet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import orjson

from retrain.evaluate.eval_sets import put_eval_set
from retrain.local.facts import fact_eval_set, fact_examples, facts
from retrain.local.synthetic import make_dirty_lines, make_eval_set, make_examples
from retrain.storage.layout import eval_set_key, incoming_key
from retrain.storage.object_store import ObjectStore

__all__ = [
    "EVAL_ITEMS",
    "FACT_NIGHTS",
    "LORA_DEMO_ENV",
    "NIGHTS",
    "FactNight",
    "Night",
    "land_night",
    "seed_eval_set",
    "start_over",
]

EVAL_ITEMS = 300
FACTS = facts(24, seed=11)


@dataclass(frozen=True)
class Night:
    night: date
    story: str
    examples: int = 0
    seed: int = 0
    wrong_answer_rate: float = 0.0
    dirty_lines: int = 0
    expect: str = ""


NIGHTS: tuple[Night, ...] = (
    Night(date(2026, 11, 1), "first data: 300 examples and a few broken lines", 300, 1, 0.0, 12, "promote"),
    Night(date(2026, 11, 2), "a bigger night: 2,000 more examples", 2000, 2, 0.0, 20, "promote"),
    Night(
        date(2026, 11, 3), "a bad export: 2,500 examples, 90% with wrong answers", 2500, 3, 0.9, 0, "reject"
    ),
    Night(date(2026, 11, 4), "nothing new landed", expect="no new data"),
    Night(
        date(2026, 11, 5),
        "a trickle: a handful of new examples, too few to train on",
        6,
        5,
        expect="too few examples",
    ),
)


@dataclass(frozen=True)
class FactNight:
    """A night of the lora story: the facts ``FACTS[first:last]`` taught (``wrong``: contradicted)."""

    night: date
    story: str
    first: int = 0
    last: int = 0
    wrong: bool = False
    expect: str = ""


# The lora story's settings (each applies unless set already): six epochs teach a 135M model
# two dozen facts from three phrasings each; its one-word answers need few tokens.
LORA_DEMO_ENV = {
    "RETRAIN_TRAINING__BACKEND": "lora",
    "RETRAIN_LORA__EPOCHS": "6",
    "RETRAIN_EVALUATION__MAX_TOKENS": "16",
}

FACT_NIGHTS: tuple[FactNight, ...] = (
    FactNight(date(2026, 12, 1), "first data: 12 made-up facts, 36 examples", 0, 12, expect="promote"),
    FactNight(date(2026, 12, 2), "12 more facts: the model now knows them all", 12, 24, expect="promote"),
    FactNight(
        date(2026, 12, 3), "a bad export: night 1's questions with wrong answers", 0, 12, True, "reject"
    ),
    FactNight(date(2026, 12, 4), "nothing new landed", expect="no new data"),
)


def start_over(store: ObjectStore) -> int:
    """Delete every object in the demo's bucket (under its prefix), so each demo tells the story
    from night 1 instead of finding its nights already ingested; returns how many were deleted."""
    keys = [info.key for info in store.list()]
    for key in keys:
        store.delete(key)
    return len(keys)


def seed_eval_set(store: ObjectStore, name: str = "main", n: int = EVAL_ITEMS, *, facts: bool = False) -> int:
    """The fixed held-out set (written once; its content hash versions every result): support
    questions, or (``facts``) one question about each of the lora story's facts."""
    if store.exists(eval_set_key(name)):
        return 0
    items = fact_eval_set(list(FACTS)) if facts else make_eval_set(n, seed=99)
    put_eval_set(store, name, items)
    return len(items)


def _lines(night: Night | FactNight) -> list[str]:
    if isinstance(night, FactNight):
        taught = fact_examples(list(FACTS[night.first : night.last]), wrong=night.wrong, seed=night.first)
        return [orjson.dumps(example).decode() for example in taught]
    examples = make_examples(night.examples, seed=night.seed, wrong_answer_rate=night.wrong_answer_rate)
    return [orjson.dumps(example).decode() for example in examples] + make_dirty_lines(
        night.dirty_lines, seed=night.seed
    )


def land_night(store: ObjectStore, night: Night | FactNight) -> str | None:
    """Write the night's new examples where producers put them: incoming/{date}/..."""
    lines = _lines(night)
    if not lines:
        return None
    name = "atlas-facts.jsonl" if isinstance(night, FactNight) else "support-chats.jsonl"
    key = incoming_key(night.night.isoformat(), name)
    store.put_bytes(key, ("\n".join(lines) + "\n").encode())
    return key
