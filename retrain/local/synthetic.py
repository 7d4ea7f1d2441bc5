"""Deterministic synthetic data: a support assistant for the fictional "Nimbus Notes" app.

Each intent is an action on a feature ("reset" x "password") with one canonical answer, a
short exact sentence. User questions are paraphrases built from templates and synonyms.
Training examples and evaluation items use disjoint question templates, so an evaluation
question never appears verbatim in any training set, whatever the seeds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SYSTEM_PROMPT",
    "Intent",
    "intents",
    "make_dirty_lines",
    "make_eval_set",
    "make_examples",
]

SYSTEM_PROMPT = "You are the Nimbus Notes support assistant. Answer with the exact documented step."

_ACTIONS: dict[str, tuple[str, ...]] = {
    "reset": ("reset", "recover"),
    "change": ("change", "update", "modify"),
    "export": ("export", "save out"),
    "delete": ("delete", "remove", "get rid of"),
    "share": ("share", "send"),
    "restore": ("restore", "bring back"),
    "rename": ("rename", "retitle"),
    "archive": ("archive", "put away"),
    "download": ("download", "grab a copy of"),
    "sync": ("sync", "synchronise"),
    "lock": ("lock", "protect"),
    "duplicate": ("duplicate", "copy"),
    "hide": ("hide", "conceal"),
    "print": ("print", "print out"),
    "import": ("import", "bring in"),
}

_FEATURES: dict[str, tuple[str, ...]] = {
    "password": ("password", "login password"),
    "notebook": ("notebook", "note book"),
    "workspace": ("workspace", "team space"),
    "profile photo": ("profile photo", "avatar"),
    "billing address": ("billing address", "invoice address"),
    "tag list": ("tag list", "tags"),
    "reminder": ("reminder", "alarm"),
    "template": ("template", "note template"),
    "shared folder": ("shared folder", "team folder"),
    "calendar link": ("calendar link", "calendar connection"),
    "email digest": ("email digest", "daily email"),
    "recovery codes": ("recovery codes", "backup codes"),
    "web clipper": ("web clipper", "browser clipper"),
    "offline notes": ("offline notes", "offline copies"),
    "signature": ("signature", "email signature"),
    "sketch": ("sketch", "drawing"),
    "voice memo": ("voice memo", "audio note"),
    "checklist": ("checklist", "to-do list"),
    "theme": ("theme", "colour scheme"),
    "api token": ("api token", "developer token"),
}

_MENUS = ("Settings", "Account", "Workspace", "Library", "Tools")
_SECTIONS = ("Security", "General", "Data", "Sharing", "Advanced", "Appearance", "Billing", "Devices")

_TRAIN_TEMPLATES = (
    "How do I {verb} my {thing}?",
    "how can i {verb} the {thing}",
    "I need to {verb} my {thing}, what should I do?",
    "Where is the option to {verb} a {thing}?",
    "Can you tell me how to {verb} my {thing}?",
    "{Verb} {thing} - how?",
    "is there a way to {verb} the {thing} in nimbus",
    "Help! I want to {verb} my {thing}.",
    "What are the steps to {verb} a {thing}?",
    "trying to {verb} {thing}, where do i go",
)

_EVAL_TEMPLATES = (
    "Please explain how I {verb} my {thing}.",
    "what's the way to {verb} the {thing}?",
    "I'd like to {verb} my {thing}. Steps?",
    "Could you show me where to {verb} the {thing}",
    "quick question: {verb} {thing}?",
)

_FALLBACK_CONTENT = "What is the meaning of life?"


@dataclass(frozen=True)
class Intent:
    """One thing users ask for, with the single answer support gives."""

    name: str
    action: str
    feature: str
    answer: str


def intents(n_intents: int = 300, seed: int = 0) -> list[Intent]:
    """The first ``n_intents`` intents (at most 300); menu paths depend on ``seed``."""
    pairs = [(action, feature) for feature in _FEATURES for action in _ACTIONS]
    if not 1 <= n_intents <= len(pairs):
        raise ValueError(f"n_intents must be between 1 and {len(pairs)} (got {n_intents})")
    rng = random.Random(f"intents-{seed}")
    result = []
    for action, feature in pairs[:n_intents]:
        menu, section = rng.choice(_MENUS), rng.choice(_SECTIONS)
        answer = (
            f"To {action} your {feature}, open {menu} > {section} and choose {action.capitalize()} {feature}."
        )
        result.append(Intent(f"{action}_{feature.replace(' ', '_')}", action, feature, answer))
    return result


def _question(intent: Intent, templates: Sequence[str], rng: random.Random) -> str:
    verb = rng.choice(_ACTIONS[intent.action])
    thing = rng.choice(_FEATURES[intent.feature])
    return rng.choice(templates).format(verb=verb, Verb=verb.capitalize(), thing=thing)


def _chat(question: str, answer: str, system_prompt: bool) -> dict[str, Any]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}] if system_prompt else []
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def make_examples(
    n: int,
    *,
    seed: int,
    intents: Sequence[Intent] | None = None,
    wrong_answer_rate: float = 0.0,
    system_prompt: bool = True,
) -> list[dict[str, Any]]:
    """``n`` chat training examples; a ``wrong_answer_rate`` share answer with another intent's answer.

    Questions depend on ``seed`` only: another rate with the same seed corrupts the same questions.
    """
    pool = list(intents) if intents is not None else _default_intents()
    if not 0.0 <= wrong_answer_rate <= 1.0:
        raise ValueError(f"wrong_answer_rate must be within [0, 1] (got {wrong_answer_rate})")
    rng = random.Random(f"examples-{seed}")
    corrupt = random.Random(f"wrong-answers-{seed}")
    examples = []
    for _ in range(n):
        intent = rng.choice(pool)
        answer = intent.answer
        if len(pool) > 1 and corrupt.random() < wrong_answer_rate:
            answer = corrupt.choice([other for other in pool if other is not intent]).answer
        examples.append(_chat(_question(intent, _TRAIN_TEMPLATES, rng), answer, system_prompt))
    return examples


def make_eval_set(n: int, *, seed: int, intents: Sequence[Intent] | None = None) -> list[dict[str, Any]]:
    """``n`` distinct held-out items phrased with templates no training example uses.

    The last (assistant) message of each item is the reference answer.
    """
    pool = list(intents) if intents is not None else _default_intents()
    rng = random.Random(f"eval-{seed}")
    questions: dict[str, str] = {}
    for _ in range(n * 50):
        if len(questions) == n:
            break
        intent = rng.choice(pool)
        questions.setdefault(_question(intent, _EVAL_TEMPLATES, rng), intent.answer)
    if len(questions) < n:
        raise ValueError(f"cannot phrase {n} distinct eval questions from {len(pool)} intents")
    return [_chat(question, answer, True) for question, answer in questions.items()]


def make_dirty_lines(n: int, seed: int) -> list[str]:
    """``n`` JSONL lines that a validator must reject, one defect each (cycling through the kinds)."""
    rng = random.Random(f"dirty-{seed}")
    good = make_examples(max(n, 1), seed=seed)
    makers = (
        lambda ex: json.dumps(ex)[:-7],
        lambda ex: json.dumps({"messages": ex["messages"][:-1]}),
        lambda ex: json.dumps({"messages": [*ex["messages"][:-1], {"role": "assistant", "content": ""}]}),
        lambda ex: json.dumps(
            {"messages": [{"role": "wizard", "content": _FALLBACK_CONTENT}, *ex["messages"][1:]]}
        ),
        lambda ex: json.dumps({"prompt": ex["messages"][1]["content"]}),
        lambda ex: json.dumps({"messages": [{"role": "user"}, ex["messages"][-1]]}),
    )
    offset = rng.randrange(len(makers))
    return [makers[(offset + i) % len(makers)](good[i]) for i in range(n)]


def _default_intents() -> list[Intent]:
    return intents()
