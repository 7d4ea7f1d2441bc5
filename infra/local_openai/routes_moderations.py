"""Moderation: ``POST /moderations`` with a deterministic word list in place of a classifier.

Each category has a few words; an input that holds one (as a whole word, any case) is flagged in
that category with a score of 0.9 (else 0.01), as ``omni-moderation`` would flag it. The
response has every category of the published schema, so the SDK validates it strictly.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from local_openai.errors import ApiError
from local_openai.store import new_id

__all__ = ["FLAGGED_WORDS", "router"]

router = APIRouter()

MODELS = ("omni-moderation-latest", "omni-moderation-2024-09-26", "text-moderation-latest")
CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
FLAGGED_WORDS: dict[str, tuple[str, ...]] = {
    "violence": ("massacre", "behead"),
    "harassment/threatening": ("i will hurt you",),
    "illicit": ("methamphetamine synthesis", "counterfeit banknotes"),
    "self-harm/instructions": ("how to self-harm",),
    "hate": ("subhuman",),
}
_PATTERNS = {
    category: re.compile("|".join(rf"\b{re.escape(word)}\b" for word in words), re.IGNORECASE)
    for category, words in FLAGGED_WORDS.items()
}
_MAX_INPUTS = 32


class CreateModeration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str | list[str]
    model: str = "omni-moderation-latest"


def _result(text: str) -> dict[str, Any]:
    hits = {category for category, pattern in _PATTERNS.items() if pattern.search(text)}
    return {
        "flagged": bool(hits),
        "categories": {category: category in hits for category in CATEGORIES},
        "category_scores": {category: 0.9 if category in hits else 0.01 for category in CATEGORIES},
        "category_applied_input_types": {category: ["text"] for category in CATEGORIES},
    }


@router.post("/moderations")
def create_moderation(body: CreateModeration) -> dict[str, Any]:
    if body.model not in MODELS:
        raise ApiError(404, f"The model '{body.model}' does not exist", param="model", code="model_not_found")
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if not inputs or len(inputs) > _MAX_INPUTS:
        raise ApiError(400, f"input must hold 1 to {_MAX_INPUTS} strings, not {len(inputs)}", param="input")
    return {"id": new_id("modr"), "model": body.model, "results": [_result(text) for text in inputs]}
